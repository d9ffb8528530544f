"""trainer.gradient_checkpointing: the same gradients as the plain pass (float32, 1e-5) for SFT, the RL actor
and critic, reward models and DPO; really on (fewer saved activations) in the trained models and off in the
frozen reference; and the shared-prompt pass turned off with a logged reason, since checkpointed layers
keep no KV cache in passes with gradients."""
from __future__ import annotations

import pytest
import torch

from rlvr.algorithms.bradley_terry import bradley_terry_loss
from rlvr.algorithms.logprobs import sft_loss, token_logprobs
from rlvr.algorithms.losses import policy_loss, value_loss
from rlvr.algorithms.preference import dpo_loss
from rlvr.config import config_from_dict
from rlvr.config.rl import RLTrainerConfig
from rlvr.data.collate import pad_right
from rlvr.generation.base import Sample
from rlvr.models import enable_gradient_checkpointing, is_checkpointing, load_model
from rlvr.reward_scoring import forward_rewards, load_reward_model
from rlvr.trainers.rl_models import ValueModel
from rlvr.trainers.rollout import build_batch
from rlvr.trainers.shared_prompts import response_logits, shares_prompts
from tests.device_audit import WORLD_OF_ONE

PAD = 0
SEQUENCES = [[5, 6, 7, 8, 9, 10, 11], [9, 4, 12, 13], [3, 14, 15, 16, 17, 18], [7, 7, 8, 2]]
TINY = {"name": "tiny", "tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}}
ARITH = {"source": "arith", "arith": {"train_size": 32, "test_size": 4}, "eval_samples": 4}
QUIET = {"progress": False, "tensorboard": False}


def _rollout():
    """Two prompts, two samples each, responses of different lengths (left-padded prompts)."""
    prompts = [[5, 6, 7, 8], [9, 4, 3]]
    responses = [[7, 8, 2], [4, 11], [10, 11, 12, 2], [5]]
    samples = [Sample(prompt=str(i // 2), prompt_ids=prompts[i // 2], response_ids=r, text="",
                      logprobs=[0.0] * len(r), finish_reason="eos", reward=0.0)
               for i, r in enumerate(responses)]
    return build_batch(samples, pad_id=PAD, counts_in_loss=[True] * len(samples))


def _loss_mask(batch: dict, prompt_len: int = 2) -> torch.Tensor:
    """1 on the targets after the first `prompt_len` tokens of each row (position t predicts t + 1)."""
    mask = batch["attention_mask"][:, 1:].float()
    mask[:, : prompt_len - 1] = 0
    return mask


def _both(make, loss_of) -> tuple[dict, dict]:
    """The gradients of loss_of(model) for a plain model and a checkpointed one, both made by make() (the
    same weights: make seeds anything it initialises)."""
    grads = []
    for checkpointed in (False, True):
        model = make()
        if checkpointed:
            enable_gradient_checkpointing(model)
        assert is_checkpointing(model) == checkpointed
        model.train()
        loss_of(model).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    return grads[0], grads[1]


def _assert_equal(plain: dict, checkpointed: dict) -> None:
    assert plain.keys() == checkpointed.keys() and len(plain) > 4
    assert max(g.abs().max() for g in plain.values()) > 1e-4  # a loss with no gradient would prove nothing
    for name, g in plain.items():
        assert torch.allclose(g, checkpointed[name], rtol=0, atol=1e-5), name


def test_sft_micro_batch_gradients_equal_the_plain_pass(tiny_model_dir):
    batch = pad_right(SEQUENCES, PAD)
    mask = _loss_mask(batch)

    def loss(model):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return sft_loss(token_logprobs(logits[:, :-1], batch["input_ids"][:, 1:]), mask, mask.sum())

    _assert_equal(*_both(lambda: load_model(tiny_model_dir), loss))


def test_rl_policy_loss_gradients_equal_the_plain_pass(tiny_model_dir):
    b = _rollout()
    torch.manual_seed(1)
    advantages = torch.randn(b.token_mask.shape)
    old = torch.randn(b.token_mask.shape) * 0.1 - 3.0  # some ratios clip, some do not

    def loss(model):
        lp = token_logprobs(response_logits(model, b, share_prompts=False), b.input_ids[:, b.prompt_len :])
        per_token, _ = policy_loss(lp, old, advantages, 0.2, 0.2)
        return (per_token * b.token_mask).sum() / b.token_mask.sum()

    _assert_equal(*_both(lambda: load_model(tiny_model_dir), loss))


def test_critic_value_loss_gradients_equal_the_plain_pass(tiny_model_dir):
    b = _rollout()
    torch.manual_seed(2)
    returns, old_values = torch.randn(b.token_mask.shape), torch.randn(b.token_mask.shape) * 0.1

    def critic():
        model = ValueModel(tiny_model_dir)
        torch.manual_seed(0)
        torch.nn.init.normal_(model.head.weight)  # its zero start would hide the body's gradients
        return model

    def loss(model):
        values = response_logits(model, b, share_prompts=False).squeeze(-1)
        return (value_loss(values, old_values, returns, 0.2) * b.token_mask).sum() / b.token_mask.sum()

    plain, checkpointed = _both(critic, loss)
    assert any(name.startswith("body.") for name in plain)
    _assert_equal(plain, checkpointed)


def test_reward_model_loss_gradients_equal_the_plain_pass(tiny_model_dir):
    batch = pad_right(SEQUENCES, PAD)

    def reward_model():
        torch.manual_seed(0)  # the same freshly initialised head both times
        return load_reward_model(tiny_model_dir, pad_token_id=PAD)

    def loss(model):
        rewards = forward_rewards(model, batch)
        return bradley_terry_loss(rewards[:2], rewards[2:]).mean()

    _assert_equal(*_both(reward_model, loss))


def test_dpo_loss_gradients_equal_the_plain_pass(tiny_model_dir):
    batch = pad_right(SEQUENCES, PAD)  # rows 0, 1 chosen; 2, 3 rejected
    mask = _loss_mask(batch)

    def sequence_logps(model):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return (token_logprobs(logits[:, :-1], batch["input_ids"][:, 1:]) * mask).sum(-1).view(2, -1)

    reference = load_model(tiny_model_dir).eval()
    with torch.no_grad():
        ref = sequence_logps(reference) + torch.tensor([[0.3, -0.2], [0.1, 0.4]])  # not the policy's own

    def loss(model):
        logps = sequence_logps(model)
        return dpo_loss(logps[0], logps[1], ref[0], ref[1], beta=0.5).mean()

    _assert_equal(*_both(lambda: load_model(tiny_model_dir), loss))


def test_checkpointing_keeps_fewer_activations_for_backward(tiny_model_dir):
    """Counted with saved_tensors_hooks: the checkpointed layers keep their inputs, not their insides."""
    ids = torch.randint(7, 17, (4, 48))

    def saved_floats(model) -> int:
        count = 0

        def pack(t):
            nonlocal count
            count += t.numel()
            return t

        model.train()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids).logits.sum().backward()
        return count

    plain = saved_floats(load_model(tiny_model_dir))
    checkpointed = saved_floats(enable_gradient_checkpointing(load_model(tiny_model_dir)))
    assert checkpointed < 0.25 * plain, (checkpointed, plain)  # 0.10 with the session's tiny model


def test_the_shared_prompt_pass_has_no_cache_under_checkpointing(tiny_model_dir):
    """Why sharing is turned off: a checkpointed layer drops the KV cache in a pass with gradients (its
    replay would write the cache twice), so the response pass would have no prompt to attend to. Without
    gradients (generation, the no-grad passes) the cache is kept."""
    b = _rollout()
    model = enable_gradient_checkpointing(load_model(tiny_model_dir)).train()
    try:
        response_logits(model, b, share_prompts=True)
    except RuntimeError as e:
        assert "no KV cache" in str(e)
    else:
        raise AssertionError("the prompt pass kept its KV cache under checkpointing: sharing could stay on")
    with torch.no_grad():
        assert torch.allclose(response_logits(model, b, share_prompts=True),
                              response_logits(model, b, share_prompts=False), atol=1e-5)


def test_checkpointing_turns_prompt_sharing_off_with_one_logged_line():
    said: list[str] = []
    assert shares_prompts(RLTrainerConfig(gradient_checkpointing=False), said.append) and not said
    assert not shares_prompts(RLTrainerConfig(gradient_checkpointing=True), said.append)
    assert len(said) == 1 and "trainer.gradient_checkpointing" in said[0] and "\n" not in said[0]
    said.clear()  # nothing to say when sharing was off anyway
    assert not shares_prompts(RLTrainerConfig(gradient_checkpointing=True, share_prompts=False), said.append)
    assert not shares_prompts(RLTrainerConfig(gradient_checkpointing=True, samples_per_prompt=1), said.append)
    assert not said


TRAINERS = {  # kind -> its trainer section for one tiny step
    "sft": {"batch_size": 4, "micro_batch_size": 4},
    "reward_model": {"batch_size": 4, "micro_batch_size": 4},
    # online, the initial model as reference: a frozen copy is built
    "preference": {"mode": "online", "reference": "initial", "prompts_per_step": 2, "samples_per_prompt": 2,
                   "batch_size": 4, "micro_batch_size": 4, "eval_samples": 4},
    "rl": {"algorithm": "ppo", "kl_coef": 0.05, "prompts_per_step": 2, "samples_per_prompt": 2,
           "minibatch_size": 4, "micro_batch_size": 4, "eval_samples": 4},
}


def _trainer(kind: str, out, checkpointing: bool):
    from rlvr.trainers.preference import PreferenceTrainer
    from rlvr.trainers.reward_model import RewardModelTrainer
    from rlvr.trainers.rl import RLTrainer
    from rlvr.trainers.sft import SFTTrainer

    extra = {"generation": {"max_new_tokens": 4},
             "reward": {"verifiers": [{"name": "format", "options": {"pattern": "[0-4]"}}], "workers": 0}}
    cfg = config_from_dict({
        "kind": kind, "model": TINY, "data": ARITH, **(extra if kind in ("rl", "preference") else {}),
        "trainer": {**TRAINERS[kind], "gradient_checkpointing": checkpointing, "max_steps": 1,
                    "eval_every": 0},
        "logging": {"out_dir": str(out / f"{kind}-{checkpointing}"), **QUIET}})
    trainers = {"sft": SFTTrainer, "reward_model": RewardModelTrainer, "preference": PreferenceTrainer,
                "rl": RLTrainer}
    return trainers[kind](cfg)


def _checkpointing_now(model) -> bool:
    """Checkpointing switched on and in effect: transformers checkpoints only layers in train mode."""
    module = getattr(model, "module", model)
    return any(getattr(m, "gradient_checkpointing", False) is True and m.training for m in module.modules())


@pytest.mark.parametrize("kind", list(TRAINERS))
def test_each_trainer_checkpoints_its_trained_models_and_not_the_reference(kind, tmp_path, monkeypatch,
                                                                           capsys):
    """The key reaches every model a trainer trains (in train mode, so that it takes effect: one step keeps
    far fewer activations for backward, and gives the same loss), and not the frozen reference. RL turns the
    shared-prompt pass off, and says so."""
    for key, value in WORLD_OF_ONE.items():  # one rank, even after an earlier test left its process group
        monkeypatch.setenv(key, value)
    runs = {}
    for checkpointing in (False, True):
        trainer = _trainer(kind, tmp_path, checkpointing)
        saved = 0

        def pack(t):
            nonlocal saved
            saved += t.numel()
            return t

        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                metrics = trainer.train_step(0)
            keys = ("policy_loss", "value_loss") if kind == "rl" else ("loss",)
            losses = [metrics[k] for k in keys]
            trained = list(trainer.engines.values())
            assert len(trained) == (2 if kind == "rl" else 1)
            assert all(_checkpointing_now(e) == checkpointing for e in trained)
            if getattr(trainer, "reference", None) is not None:
                assert not is_checkpointing(trainer.reference)
            if kind == "rl":
                assert trainer.share_prompts is not checkpointing
        finally:
            trainer.close()
        runs[checkpointing] = (losses, saved)
    if kind in ("rl", "preference"):
        assert trainer.reference is not None
    if kind == "rl":
        assert "trainer.share_prompts: off, because trainer.gradient_checkpointing" in capsys.readouterr().out
    (plain_losses, plain_saved), (losses, saved) = runs[False], runs[True]
    assert losses == pytest.approx(plain_losses, rel=1e-5, abs=1e-6)
    assert saved < 0.5 * plain_saved, (saved, plain_saved)


def test_zero3_sft_steps_are_the_same_with_checkpointing(tmp_path, monkeypatch):
    """Under ZeRO-3 (one rank: partitioned weights, DeepSpeed's gather hooks) the replayed layers gather
    their weights again: two steps give the same losses and gradient norms as without checkpointing."""
    from rlvr.trainers.sft import SFTTrainer

    for key, value in WORLD_OF_ONE.items():
        monkeypatch.setenv(key, value)
    runs = []
    for checkpointing in (False, True):
        cfg = config_from_dict({
            "kind": "sft", "model": TINY, "data": ARITH, "deepspeed": {"stage": 3},
            "trainer": {"gradient_checkpointing": checkpointing, "max_steps": 2, "batch_size": 8,
                        "micro_batch_size": 4, "warmup_steps": 0},
            "logging": {"out_dir": str(tmp_path / f"sft-{checkpointing}"), **QUIET}})
        trainer = SFTTrainer(cfg)
        try:
            assert trainer.engine.zero_optimization_stage() == 3
            assert is_checkpointing(trainer.engine) == checkpointing
            metrics = [trainer.train_step(step) for step in range(2)]
        finally:
            trainer.close()
        runs.append([m[k] for m in metrics for k in ("loss", "grad_norm")])
    assert runs[0] == pytest.approx(runs[1], rel=1e-6, abs=1e-7)
