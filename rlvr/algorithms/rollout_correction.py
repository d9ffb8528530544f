"""Rollout correction: importance weights for the gap between the engine that sampled and the trainer.

The engine (vLLM, 16-bit, other kernels) samples y ~ mu and records log mu(y_t); the trainer recomputes
the old log-probabilities log pi_old(y_t) and its PPO/GRPO update assumes y ~ pi_old. The per-token ratio

    r_t = pi_old(y_t) / mu(y_t) = exp(train_t - engine_t)

reweights the samples toward pi_old (Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You
Off-Policy RL Training"). The weights are constants (no gradient: they change the measure the samples
come from, not the objective) and multiply the per-token policy-gradient loss after PPO's clip, before
the KL and entropy terms are added and before aggregation; masked-out tokens still count in the
aggregation's denominator (TRL, OpenRLHF, IcePop; verl instead drops them from it).

Shapes: [B, T] over response tokens; `mask` is 1 on the tokens that count. Levels: `token` gives each token
its own r_t; `sequence` gives every token of a response r = prod_t r_t = exp(sum_t log r_t) (the unbiased
ratio of the whole response, of high variance on long ones). Outside the mask the weight is 1.0, the
same as mode `none`: the weights never decide what counts, the mask does.
"""
from __future__ import annotations

import math

import torch

# exp(20) ~ 4.9e8: large enough to show an outlier, small enough that sums of it stay finite
_LOG_RATIO_BOUND = 20.0


def _unit_log_ratios(train_logprobs: torch.Tensor, engine_logprobs: torch.Tensor, mask: torch.Tensor,
                     level: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(log r of each unit, 1.0 on units that exist): [B, T] per token, or [B, 1] per response.

    `where`, not a product with the mask: the engine may leave nan or garbage past a response's end."""
    valid = mask.bool()
    log_r = torch.where(valid, train_logprobs.float() - engine_logprobs.float(), 0.0)
    if level == "token":
        return log_r, valid.float()
    if level == "sequence":
        return log_r.sum(-1, keepdim=True), valid.any(-1, keepdim=True).float()
    raise ValueError(f"unknown rollout correction level {level!r} (token, sequence)")


def _unit_weights(log_r: torch.Tensor, mode: str, cap: float) -> torch.Tensor:
    """The weight of each unit from its log-ratio, compared in log space so no exp can overflow:

        none:  w = 1
        tis:   w = min(r, C)                          truncated IS (Yao et al. 2025)
        mask:  w = r * 1[1/C <= r <= C]               masked IS (IcePop; TRL *_mask, two-sided)
    """
    if cap <= 1:
        raise ValueError(f"rollout correction cap must be above 1, got {cap}")
    log_cap = math.log(cap)
    if mode == "none":
        return torch.ones_like(log_r)
    truncated = torch.exp(log_r.clamp(max=log_cap))  # min(r, C); exp(log r) alone overflows to inf
    if mode == "tis":
        return truncated
    if mode == "mask":
        return truncated * (log_r.abs() <= log_cap)  # inside the band min(r, C) = r
    raise ValueError(f"unknown rollout correction mode {mode!r} (none, tis, mask)")


@torch.no_grad()
def rollout_weights(train_logprobs: torch.Tensor, engine_logprobs: torch.Tensor, mask: torch.Tensor,
                    mode: str, level: str, cap: float) -> torch.Tensor:
    """Per-token weights [B, T] (float32, no gradient) for the policy-gradient loss:

        token:     w_t = f(r_t)                        r_t = exp(train_t - engine_t)
        sequence:  w_t = f(r)  for every t of y        r   = exp(sum_{t in y} (train_t - engine_t))
        f = 1 (none), min(r, C) (tis), r * 1[1/C <= r <= C] (mask);  w_t = 1 where mask_t = 0.

    Equal log-probabilities give r = 1 and w = 1 in every mode: the identity, as it must be when the
    trainer reuses the engine's numbers."""
    log_r, _ = _unit_log_ratios(train_logprobs, engine_logprobs, mask, level)
    return torch.where(mask.bool(), _unit_weights(log_r, mode, cap), 1.0)  # [B, 1] broadcasts over T


@torch.no_grad()
def rollout_stats(train_logprobs: torch.Tensor, engine_logprobs: torch.Tensor, mask: torch.Tensor,
                  mode: str, level: str, cap: float) -> tuple[dict[str, float], dict[str, float]]:
    """What the correction saw, as (sums, extremes) that combine over ranks: sums by summing, extremes by
    max (`ratio_max`) and min (`ratio_min`); a rank with nothing to count reports -inf and +inf, the
    identities of max and min. Units are tokens or responses (`level`); r is bounded to exp(+-20).

        units, tokens          how many ratios; how many masked tokens
        ratio, weight          sum of r; sum of w over units            (E_mu[r] = 1 when nothing is off)
        above, below           units with r > C; with r < 1/C
        corrected              units the mode changed: above (tis), above + below (mask), 0 (none)
        k3                     sum over tokens of r_t - 1 - log r_t     (estimates KL(mu || pi_old))
    """
    log_r, units = _unit_log_ratios(train_logprobs, engine_logprobs, mask, level)
    w = _unit_weights(log_r, mode, cap)
    r = torch.exp(log_r.clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND))
    # in log space, as the weights decide; off the mask log r = 0 is inside every band and adds 0 to k3
    above, below = (log_r > math.log(cap)).float().sum(), (log_r < -math.log(cap)).float().sum()
    corrected = above + below if mode == "mask" else above if mode == "tis" else torch.zeros(())
    tok_log_r, tokens = _unit_log_ratios(train_logprobs, engine_logprobs, mask, "token")
    tok_log_r = tok_log_r.clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    k3 = (torch.exp(tok_log_r) - 1 - tok_log_r).sum()
    sums = {"units": units.sum(), "tokens": tokens.sum(), "ratio": (r * units).sum(),
            "weight": (w * units).sum(), "above": above, "below": below, "corrected": corrected, "k3": k3}
    valid = units.bool()
    extremes = {"ratio_max": r[valid].max() if valid.any() else -math.inf,
                "ratio_min": r[valid].min() if valid.any() else math.inf}
    return ({k: float(v) for k, v in sums.items()}, {k: float(v) for k, v in extremes.items()})


def rollout_metrics(sums: dict[str, float], extremes: dict[str, float]) -> dict[str, float]:
    """The logged numbers from (rank-combined) `rollout_stats`: means and shares per unit, k3 per token.

        ratio_mean = sum r / units         weight_mean = sum w / units
        corrected_share, above_cap_share, below_floor_share = count / units
        k3 = sum k3 / tokens               ratio_max, ratio_min (nan when there were no units)
    """
    units, tokens = max(sums["units"], 1.0), max(sums["tokens"], 1.0)
    seen = sums["units"] > 0
    return {
        "rollout_correction/ratio_mean": sums["ratio"] / units,
        "rollout_correction/weight_mean": sums["weight"] / units,
        "rollout_correction/ratio_max": extremes["ratio_max"] if seen else math.nan,
        "rollout_correction/ratio_min": extremes["ratio_min"] if seen else math.nan,
        "rollout_correction/corrected_share": sums["corrected"] / units,
        "rollout_correction/above_cap_share": sums["above"] / units,
        "rollout_correction/below_floor_share": sums["below"] / units,
        "rollout_correction/k3": sums["k3"] / tokens,
    }
