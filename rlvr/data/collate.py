"""Token-id sequences to padded batches, on the host; trainers move each batch to their device.

    pad_right(seqs)     input_ids and attention_mask, right-padded (reward models, sequence scoring)
    collate(examples)   the same plus `loss_mask` on the response tokens (SFT, preference pairs)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Example:
    ids: list[int]
    prompt_len: int  # tokens before the response; the loss skips them


def pad_right(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids and attention_mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long, device="cpu")
    attention = torch.zeros_like(ids)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s, device="cpu")
        attention[row, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": attention}


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with `loss_mask` on the targets (position t predicts token t + 1)."""
    batch = pad_right([e.ids for e in examples], pad_id)
    loss_mask = torch.zeros_like(batch["input_ids"], dtype=torch.float32)
    for row, e in enumerate(examples):
        loss_mask[row, e.prompt_len : len(e.ids)] = 1.0
    return {**batch, "loss_mask": loss_mask[:, 1:]}
