import math

import pytest
import torch

from rlvr.algorithms.logprobs import entropy, sft_loss, token_logprobs
from rlvr.data.collate import Example, collate
from rlvr.errors import UserError
from rlvr.trainers.engines import BatchPlan
from rlvr.trainers.sampler import EpochSampler
from rlvr.trainers.schedule import warmup_cosine


def test_token_logprobs_and_entropy_hand_case():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]]))
    lp = token_logprobs(logits, torch.tensor([[0, 1]]))
    assert lp[0].tolist() == pytest.approx([math.log(0.5), math.log(0.8)], abs=1e-6)
    h = entropy(logits)
    assert h[0, 0].item() == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)), abs=1e-6)


def test_sft_loss_counts_only_masked_tokens_over_the_global_count():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    assert sft_loss(logprobs, mask, 3).item() == pytest.approx((2 + 3 + 6) / 3)
    # the same tokens split across two "ranks" sum to the same loss
    a = sft_loss(logprobs[:1], mask[:1], 3) + sft_loss(logprobs[1:], mask[1:], 3)
    assert a.item() == pytest.approx((2 + 3 + 6) / 3)


def test_collate_masks_the_prompt_and_padding():
    batch = collate([Example([5, 6, 7, 8], 2), Example([5, 9, 2], 1)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [5, 9, 2, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    # loss_mask[t] says whether token t+1 is a response token
    assert batch["loss_mask"].tolist() == [[0, 1, 1], [1, 1, 0]]


def test_warmup_cosine_hand_values():
    assert warmup_cosine(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(110, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 110, 0.1) == pytest.approx(0.1)


def test_sampler_resumes_exactly_and_crosses_epochs():
    a = EpochSampler(10, seed=3)
    first = a.take(4) + a.take(4) + a.take(4)  # crosses into epoch 1
    assert sorted(first[:10]) == list(range(10)) and a.epoch == 1
    b = EpochSampler(10, seed=3)
    b.take(4)
    c = EpochSampler(10, seed=3)
    c.load_state_dict(b.state_dict())
    assert c.take(8) == first[4:]
    with pytest.raises(ValueError, match="data set of 10 rows"):
        EpochSampler(11, seed=3).load_state_dict(b.state_dict())


def test_batch_plan():
    assert BatchPlan.make(64, 16, 2) == BatchPlan(64, 16, 2, 2)
    assert BatchPlan.make(16, 64, 2) == BatchPlan(16, 8, 1, 2)  # micro shrinks to fit
    with pytest.raises(UserError, match="trainer.batch_size: 60 must be a multiple"):
        BatchPlan.make(60, 16, 2)


def test_a_deepspeed_file_overrides_the_generated_config():
    from rlvr.config import DeepSpeedConfig
    from rlvr.trainers.engines import deepspeed_config
    from tests.conftest import REPO

    plan = BatchPlan.make(16, 8, 1)
    cfg = deepspeed_config(DeepSpeedConfig(stage=0, config_file=str(REPO / "configs/deepspeed/zero3_offload.json")),
                           plan, grad_clip=1.0, dtype="float32")
    assert cfg["zero_optimization"]["stage"] == 3
    assert cfg["zero_optimization"]["offload_param"] == {"device": "cpu"}
    assert cfg["train_batch_size"] == 16 and cfg["gradient_clipping"] == 1.0  # the rest stays
    with pytest.raises(UserError, match="deepspeed.config_file: not found"):
        deepspeed_config(DeepSpeedConfig(config_file="nope.json"), plan, 1.0, "float32")


def test_a_deepspeed_file_with_its_own_optimizer_is_refused(tmp_path):
    """DeepSpeed would drop the file's optimizer for the one rlvr passes: say so instead of ignoring it."""
    from rlvr.config import DeepSpeedConfig
    from rlvr.trainers.engines import deepspeed_config

    for section in ("optimizer", "scheduler"):
        path = tmp_path / f"{section}.yaml"
        path.write_text(f"{section}: {{type: Adam}}\nzero_optimization: {{stage: 2}}\n")
        with pytest.raises(UserError, match=f"sets '{section}', which rlvr does not use"):
            deepspeed_config(DeepSpeedConfig(config_file=str(path)), BatchPlan.make(16, 8, 1), 1.0, "float32")
