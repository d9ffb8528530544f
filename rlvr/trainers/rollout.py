"""From scored samples to the padded tensors the RL losses consume.

Layout: prompts left-padded to P tokens, responses right-padded to T tokens, so the logits at positions
P-1 .. P+T-2 predict the response tokens and every [B, T] tensor lines up token by token.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvr.generation.base import Sample


@dataclass
class RolloutBatch:
    input_ids: torch.Tensor  # [B, P+T]
    attention_mask: torch.Tensor  # [B, P+T]
    position_ids: torch.Tensor  # [B, P+T]
    response_mask: torch.Tensor  # [B, T] 1.0 on response tokens that count in the loss
    gen_logprobs: torch.Tensor  # [B, T] what the generation engine recorded
    scores: torch.Tensor  # [B] sequence rewards
    lengths: torch.Tensor  # [B] response tokens (EOS included)
    prompt_len: int

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: list[int]) -> "RolloutBatch":
        i = torch.tensor(idx, dtype=torch.long, device=self.input_ids.device)
        return RolloutBatch(self.input_ids[i], self.attention_mask[i], self.position_ids[i],
                            self.response_mask[i], self.gen_logprobs[i], self.scores[i], self.lengths[i],
                            self.prompt_len)

    @property
    def token_mask(self) -> torch.Tensor:
        """[B, T] 1.0 on every response token, whether or not it counts in the loss."""
        T = self.gen_logprobs.shape[1]
        return (torch.arange(T, device=self.lengths.device)[None, :] < self.lengths[:, None]).float()


def build_batch(samples: list[Sample], pad_id: int, counts_in_loss: list[bool],
                device: torch.device | str = "cpu") -> RolloutBatch:
    """The batch on `device`: filled in on the host row by row, then copied over once per tensor."""
    P = max(len(s.prompt_ids) for s in samples)
    T = max(1, max(len(s.response_ids) for s in samples))
    B = len(samples)
    ids = torch.full((B, P + T), pad_id, dtype=torch.long, device="cpu")
    attn = torch.zeros((B, P + T), dtype=torch.long, device="cpu")
    resp_mask = torch.zeros((B, T), device="cpu")
    gen_lp = torch.zeros((B, T), device="cpu")
    for b, s in enumerate(samples):
        p, r = len(s.prompt_ids), len(s.response_ids)
        ids[b, P - p : P] = torch.tensor(s.prompt_ids, device="cpu")
        ids[b, P : P + r] = torch.tensor(s.response_ids, dtype=torch.long, device="cpu")
        attn[b, P - p : P + r] = 1
        if counts_in_loss[b]:
            resp_mask[b, :r] = 1.0
        gen_lp[b, :r] = torch.tensor(s.logprobs, device="cpu")
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    scores = torch.tensor([float(s.reward) for s in samples], device="cpu")
    lengths = torch.tensor([len(s.response_ids) for s in samples], device="cpu")
    return RolloutBatch(*(x.to(device) for x in (ids, attn, positions, resp_mask, gen_lp, scores, lengths)), P)


def last_token_rewards(scores: torch.Tensor, lengths: torch.Tensor, T: int) -> torch.Tensor:
    """[B, T] zeros with each sequence's score on its last response token."""
    rewards = torch.zeros(scores.shape[0], T, device=scores.device)
    rows = torch.arange(scores.shape[0], device=scores.device)
    rewards[rows, (lengths - 1).clamp(min=0)] = scores
    return rewards


def shape_reward(reward: float, sample: Sample, max_new_tokens: int, truncation_penalty: float | None,
                 overlong: str, buffer: int) -> float:
    """The verifier's reward for `sample`, adjusted for responses that ran out of tokens.

    truncation_penalty: a cut-off response (no EOS) gets this reward instead.
    overlong 'soft' (DAPO): from max_new_tokens - buffer on, subtract (len - (max - buffer)) / buffer."""
    reward = float(reward)
    if truncation_penalty is not None and sample.finish_reason == "length":
        reward = truncation_penalty
    if overlong == "soft":
        excess = len(sample.response_ids) - (max_new_tokens - buffer)
        if excess > 0:
            reward -= min(1.0, excess / max(buffer, 1))
    return reward
