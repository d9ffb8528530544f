"""The Bradley-Terry preference loss of reward models, and pairwise accuracy. Shapes: [N] per pair."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor,
                       margin: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Negative log-likelihood of the preferred answer under Bradley-Terry, per pair:

        P(y_w > y_l | x) = sigmoid(r(x, y_w) - r(x, y_l))
        L = -log sigmoid(r_w - r_l - m)

    A margin m > 0 (a float, or one per pair as in Llama 2's preference strength) asks the chosen reward
    to lead by at least m before the loss fades. Computed as softplus(-(r_w - r_l - m)), which equals
    -log sigmoid without its overflow for large gaps."""
    return F.softplus(-(chosen - rejected - margin))


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Per pair: 1 when r_w > r_l, 1/2 on a tie (an untrained head scores chance, not 0), else 0."""
    return (chosen > rejected).float() + 0.5 * (chosen == rejected).float()
