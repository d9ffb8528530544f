"""Every trainer and the generation engine keep their tensors on the model's device (issue 12).

Each run is rlvr's own trainer, in this process, under tests/device_audit.py with RLVR_DEVICE=cpu:0: a
tensor rlvr makes off the device (a forgotten `device=`, a hard-coded host) fails the run with the
file:line where it met the model's tensors, as it would fail on a GPU. Runs are tiny: a couple of steps.
"""
from __future__ import annotations

import pytest
import torch

from rlvr.algorithms.logprobs import sft_loss, token_logprobs
from rlvr.config import load_config
from rlvr.trainers import trainer_for
from tests.conftest import REPO
from tests.device_audit import DEVICE, DeviceAudit, DeviceMismatch, on_sentinel

SENTINEL = torch.device("cpu", 0)
FORMAT_REWARD = "reward.verifiers=[{name: format, options: {pattern: '[0-4]'}}]"
COMMON = ["data.arith.train_size=64", "data.arith.test_size=8", "data.eval_samples=8", "trainer.max_steps=2",
          "trainer.warmup_steps=0", "trainer.eval_every=0", "logging.progress=false",
          "logging.tensorboard=false"]
# reward.workers=0: the verifiers score in this process, under the audit
SAMPLING = ["generation.max_new_tokens=4", "trainer.prompts_per_step=4", "trainer.samples_per_prompt=2",
            "trainer.eval_samples=8", FORMAT_REWARD, "reward.workers=0"]


@pytest.fixture(autouse=True)
def sentinel(monkeypatch):
    on_sentinel(monkeypatch)


def audited_train(config: str, model: str, out, *extra: str, trainer_class=None) -> dict:
    cfg = load_config(REPO / "configs" / config, [f"model.name={model}", f"logging.out_dir={out}", *COMMON,
                                                  *extra])
    with DeviceAudit() as audit:
        trainer = (trainer_class or trainer_for)(cfg)
        summary = trainer.train()
    models = {name: engine.module for name, engine in trainer.engines.items()}
    if isinstance(getattr(trainer, "reference", None), torch.nn.Module):
        models["reference"] = trainer.reference
    for name, model in models.items():  # the audit saw every model on the device
        assert {audit.kind(p) for p in model.parameters()} == {DEVICE}, name
    return summary


@pytest.mark.parametrize("stage", [0, 3])  # ZeRO-3: generation gathers the partitioned weights
def test_sft_with_greedy_eval(stage, tiny_model_dir, tmp_path):
    summary = audited_train("sft_arith.yaml", tiny_model_dir, tmp_path / "sft", "trainer.batch_size=8",
                            "trainer.micro_batch_size=4", "generation.max_new_tokens=4",
                            f"deepspeed.stage={stage}")
    assert "eval_accuracy" in summary  # the final evaluation generated greedily


def test_grpo_with_kl_reference(tiny_model_dir, tmp_path):
    audited_train("grpo_arith.yaml", tiny_model_dir, tmp_path / "grpo", *SAMPLING, "trainer.kl_coef=0.05",
                  "trainer.minibatch_size=8", "trainer.micro_batch_size=4", "trainer.dynamic_sampling=false",
                  "generation.top_k=5", "generation.top_p=0.9")


def test_ppo_with_critic_and_kl_reference(tiny_model_dir, tmp_path):
    audited_train("ppo_arith.yaml", tiny_model_dir, tmp_path / "ppo", *SAMPLING, "trainer.kl_coef=0.05",
                  "trainer.minibatch_size=8", "trainer.micro_batch_size=8")


def test_online_dpo(tiny_model_dir, tmp_path):
    audited_train("dpo_online_arith.yaml", tiny_model_dir, tmp_path / "online", *SAMPLING,
                  "trainer.batch_size=4", "trainer.micro_batch_size=2", "trainer.epochs=1")


def test_offline_kto(tiny_model_dir, tmp_path):
    audited_train("dpo_arith.yaml", tiny_model_dir, tmp_path / "kto", *SAMPLING, "trainer.loss=kto",
                  "trainer.offline_prompts=8", "trainer.batch_size=4", "trainer.micro_batch_size=2")


def test_reward_model_trained_then_scoring_grpo_samples(tiny_model_dir, tmp_path):
    audited_train("rm_arith.yaml", tiny_model_dir, tmp_path / "rm", "trainer.batch_size=8",
                  "trainer.micro_batch_size=4", "trainer.max_seq_len=32")
    scorer = f"{{name: reward_model, options: {{model: {tmp_path / 'rm' / 'final'}, batch_size: 4}}}}"
    audited_train("grpo_arith_rm.yaml", tiny_model_dir, tmp_path / "grpo_rm", *SAMPLING,
                  f"reward.verifiers=[{scorer}]", "trainer.minibatch_size=8", "trainer.micro_batch_size=8")


def test_eval_generation_through_make_engine(tiny_model_dir):
    from rlvr.generation import SamplingParams, sampling_params
    from rlvr.generation.factory import make_engine
    from rlvr.models import load_tokenizer

    cfg = load_config(REPO / "configs" / "eval_smollm2_gsm8k.yaml", [
        f"model.name={tiny_model_dir}", "generation.max_new_tokens=6", "generation.top_k=5",
        "generation.top_p=0.9", "generation.stop=['7']", "generation.seed=3"])
    tokenizer = load_tokenizer(tiny_model_dir)
    prompts = ["1+2=", "30+4=", "5"]
    with DeviceAudit() as audit:
        engine = make_engine(cfg, tiny_model_dir, tokenizer)
        sampled = engine.generate(prompts, 2, sampling_params(cfg.generation))
        greedy = engine.generate(prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=6))
    assert {audit.kind(p) for p in engine.model.parameters()} == {DEVICE}
    assert len(sampled) == 6 and len(greedy) == 3


# ---- the audit bites a real run -----------------------------------------------------------------
def test_a_forgotten_move_fails_the_audited_sft_run(tiny_model_dir, tmp_path):
    from rlvr.trainers.sft import SFTTrainer

    class HostBatches(SFTTrainer):
        def _loss(self, batch, num_tokens):  # SFTTrainer._loss as it was before issue 12: no batch.to(device)
            logits = self.engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return sft_loss(token_logprobs(logits[:, :-1], batch["input_ids"][:, 1:]), batch["loss_mask"],
                            num_tokens)

    with pytest.raises(DeviceMismatch, match=r"made at rlvr/data/collate\.py:\d+") as caught:
        audited_train("sft_arith.yaml", tiny_model_dir, tmp_path / "sft", "trainer.batch_size=8",
                      "trainer.micro_batch_size=4", trainer_class=HostBatches)
    assert "tests/test_devices.py" in str(caught.value)  # where the host batch met the model


def test_a_host_tensor_in_the_engine_fails_generation(tiny_model_dir):
    from rlvr.generation import SamplingParams
    from rlvr.generation.hf import HFEngine
    from rlvr.models import load_model, load_tokenizer

    with DeviceAudit():
        engine = HFEngine(load_model(tiny_model_dir, device=SENTINEL), load_tokenizer(tiny_model_dir),
                          device=SENTINEL)
        engine.generate(["1+2="], 2, SamplingParams(max_new_tokens=3))  # as rlvr builds it: fine
        engine.eos_ids = engine.eos_ids.cpu()  # what `torch.tensor(eos)` without device= would have made
        with pytest.raises(DeviceMismatch, match=r"torch\.isin at rlvr/generation/hf\.py:\d+ .*made at "
                                                 r"tests/test_devices\.py:\d+"):
            engine.generate(["1+2="], 2, SamplingParams(max_new_tokens=3))
