"""Preference-optimisation losses on sequence log-probabilities: DPO, IPO, KTO, ORPO, SimPO.

Inputs are [B] tensors: `logps` is the sum over a response's tokens of log pi(y_t | x, y_<t) under the
policy, `ref_logps` the same under the frozen reference, `lengths` the response token counts. Every loss
returns one value per example [B]; the trainer averages over the global batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def implicit_reward(logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x))."""
    return beta * (logps - ref_logps)


def preference_stats(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(accuracy, margin): the share of pairs with r_w > r_l, and mean(r_w - r_l)."""
    return (chosen_rewards > rejected_rewards).float().mean(), (chosen_rewards - rejected_rewards).mean()


def log_ratio_gap(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor,
                  ref_rejected: torch.Tensor) -> torch.Tensor:
    """h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))."""
    return (chosen - ref_chosen) - (rejected - ref_rejected)


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """DPO (Rafailov et al. 2023), with conservative DPO's label smoothing eps (the share of pairs whose
    label is assumed flipped):

        L = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)
    """
    logits = beta * log_ratio_gap(chosen, rejected, ref_chosen, ref_rejected)
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


def ipo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float) -> torch.Tensor:
    """IPO (Azar et al. 2023), beta playing the role of tau: a squared loss that pulls the log-ratio gap to
    a finite target instead of pushing it to infinity:

        L = (h - 1 / (2 * beta))^2
    """
    return (log_ratio_gap(chosen, rejected, ref_chosen, ref_rejected) - 1 / (2 * beta)) ** 2


def kto_reference_point(kl_logps: torch.Tensor, kl_ref_logps: torch.Tensor,
                        weights: torch.Tensor | None = None) -> torch.Tensor:
    """KTO's reference point (Ethayarajh et al. 2024), a batch estimate of KL(pi || pi_ref) from responses
    paired with prompts they do not answer, clamped at zero and carrying no gradient:

        z_ref = max(0, mean_i (log pi(y'_i | x_i) - log pi_ref(y'_i | x_i)))
    """
    gap = (kl_logps - kl_ref_logps).detach()
    w = torch.ones_like(gap) if weights is None else weights
    return ((gap * w).sum() / w.sum().clamp(min=1e-12)).clamp(min=0)


def kto_loss(logps: torch.Tensor, ref_logps: torch.Tensor, desirable: torch.Tensor, z_ref: torch.Tensor | float,
             beta: float, desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> torch.Tensor:
    """KTO on unpaired examples, with r = log pi(y|x) - log pi_ref(y|x) and reference point z_ref:

        desirable:    L = lambda_D * (1 - sigmoid(beta * (r - z_ref)))
        undesirable:  L = lambda_U * (1 - sigmoid(beta * (z_ref - r)))
    """
    r = logps - ref_logps
    gain = torch.where(desirable, r - z_ref, z_ref - r)
    weight = torch.where(desirable, torch.full_like(r, desirable_weight), torch.full_like(r, undesirable_weight))
    return weight * (1 - torch.sigmoid(beta * gain))


def chosen_nll(chosen: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """The chosen response's token-mean negative log-likelihood, -log pi(y_w|x) / |y_w|: added with a weight
    alpha to DPO it gives RPO (Pang et al. 2024), which keeps DPO from lowering the chosen answer too."""
    return -chosen / chosen_lengths


def log_odds(mean_logps: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) for p = exp(mean token log-probability); p = 1 is held just below 1."""
    mean_logps = mean_logps.clamp(max=-1e-6)
    return mean_logps - torch.log(-torch.expm1(mean_logps))


def orpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, chosen_lengths: torch.Tensor,
              rejected_lengths: torch.Tensor, lam: float) -> torch.Tensor:
    """ORPO (Hong et al. 2024), no reference model: the chosen response's NLL plus an odds-ratio term, both
    on length-normalised log-probabilities l = log pi(y|x) / |y|:

        L = -l_w - lam * log sigmoid(log odds(l_w) - log odds(l_l)),   odds(l) = e^l / (1 - e^l)
    """
    mean_w, mean_l = chosen / chosen_lengths, rejected / rejected_lengths
    return chosen_nll(chosen, chosen_lengths) - lam * F.logsigmoid(log_odds(mean_w) - log_odds(mean_l))


def simpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, chosen_lengths: torch.Tensor,
               rejected_lengths: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """SimPO (Meng et al. 2024), no reference model: length-normalised log-probabilities as the reward, and a
    target margin gamma:

        L = -log sigmoid(beta * log pi(y_w|x) / |y_w| - beta * log pi(y_l|x) / |y_l| - gamma)
    """
    return -F.logsigmoid(beta * chosen / chosen_lengths - beta * rejected / rejected_lengths - gamma)
