"""A resumable, rank-independent order over a data set.

The order depends only on (seed, epoch), never on the number of ranks: a global batch is the next
`batch_size` indices, and each rank takes its own slice of it. The whole state is one integer (samples
consumed), saved in every checkpoint, so a resumed run continues exactly where it stopped and never
replays data it has seen.
"""
from __future__ import annotations

import torch


class EpochSampler:
    def __init__(self, size: int, seed: int, shuffle: bool = True):
        if size <= 0:
            raise ValueError("cannot sample from an empty data set")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.consumed = 0
        self._cached: tuple[int, list[int]] = (-1, [])

    def _order(self, epoch: int) -> list[int]:
        if self._cached[0] != epoch:
            if self.shuffle:
                # host-side: only the index list leaves this function
                g = torch.Generator(device="cpu").manual_seed(self.seed * 100_003 + epoch)
                order = torch.randperm(self.size, generator=g, device="cpu").tolist()
            else:
                order = list(range(self.size))
            self._cached = (epoch, order)
        return self._cached[1]

    def take(self, k: int) -> list[int]:
        """The next k indices, continuing into the next epoch's order when this one ends."""
        out: list[int] = []
        while len(out) < k:
            epoch, offset = divmod(self.consumed, self.size)
            chunk = self._order(epoch)[offset : offset + k - len(out)]
            out += chunk
            self.consumed += len(chunk)
        return out

    @property
    def epoch(self) -> int:
        return self.consumed // self.size

    def state_dict(self) -> dict:
        return {"consumed": self.consumed, "size": self.size, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size or state["seed"] != self.seed:
            raise ValueError(f"checkpoint was written for a data set of {state['size']} rows with seed "
                             f"{state['seed']}, this run has {self.size} rows with seed {self.seed}")
        self.consumed = state["consumed"]
