"""Drive a real VLLMEngine inside .venv-vllm and record what it did, for tests/test_vllm_engine.py.

Run as `.venv-vllm/bin/python tests/vllm_check.py MODEL_DIR OUT.json`. It only records; the test (in
the main venv, with the trainer's transformers) recomputes everything and judges it.

Recorded, in order:
  greedy      generate(prompts, n=1, greedy); greedy_twice: the same with n=2
  sampled     generate(prompts, n=3, T=0.7, top-k 40, top-p 0.9, stop "\\n", seed 7), twice (same seed)
  perturbed   greedy again after update_weights(perturbed copy of the model)  (see PERTURBATION)
  restored    greedy again after update_weights(original model)
  errors      update_weights with wrong parameter names; with one parameter missing; with a model whose
              parameters never arrive (a rank that never joins the gather)
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict

import torch

QUESTIONS = ["What is 2+3? Answer briefly.", "Name the capital of France in one word."]
GREEDY = {"temperature": 0.0, "max_new_tokens": 24}
SAMPLED = {"temperature": 0.7, "top_k": 40, "top_p": 0.9, "max_new_tokens": 16, "stop": ["\n"], "seed": 7}
# (parameter, factor): touches a fused q/k/v weight, a fused gate/up weight and the final norm, so a
# push that skipped or misplaced any of those kinds would show.
PERTURBATION = [("model.layers.3.self_attn.k_proj.weight", 1.5),
                ("model.layers.5.mlp.gate_proj.weight", 0.5),
                ("model.norm.weight", 0.8)]


def perturb(model: torch.nn.Module) -> torch.nn.Module:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, factor in PERTURBATION:
            params[name].mul_(factor)
    return model


class WithoutNorm(torch.nn.Module):
    """A trainer model that lacks one parameter the engine has (the final norm)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.inner = model

    def named_parameters(self, *args, **kwargs):
        return ((n, p) for n, p in self.inner.named_parameters() if n != "model.norm.weight")


class NeverReady(torch.nn.Module):
    """A model whose parameter listing blocks until released: stands in for a rank that never joins."""

    def __init__(self, release: threading.Event):
        super().__init__()
        self.release = release

    def named_parameters(self, *args, **kwargs):
        self.release.wait()
        return iter(())


def main(model_dir: str, out_path: str) -> None:
    from transformers import AutoModelForCausalLM

    from rlvr.errors import UserError
    from rlvr.generation.base import SamplingParams
    from rlvr.generation.vllm import VLLMEngine, WeightSyncError

    record: dict = {"timings": {}}
    try:  # checked before any model is loaded
        VLLMEngine(model_dir, enable_sleep_mode=True)
        record["sleep_mode"] = "available"
    except UserError as e:
        record["sleep_mode"] = str(e)
    started = time.monotonic()
    engine = VLLMEngine(model_dir, dtype="float32", max_model_len=1024, seed=0)
    record["timings"]["engine_load_s"] = time.monotonic() - started

    prompts = [engine.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                    add_generation_prompt=True) for q in QUESTIONS]
    record["prompts"] = prompts

    def run(key: str, n: int, params: dict) -> None:
        started = time.monotonic()
        record[key] = [asdict(s) for s in engine.generate(prompts, n, SamplingParams(**params))]
        record["timings"][f"{key}_s"] = time.monotonic() - started

    run("greedy", 1, GREEDY)
    run("greedy_twice", 2, GREEDY)
    run("sampled", 3, SAMPLED)
    run("sampled_again", 3, SAMPLED)

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    engine.update_weights(perturb(model))
    record["timings"]["update_weights_s"] = engine.last_sync_seconds
    run("perturbed", 1, GREEDY)
    model.load_state_dict(original)
    engine.update_weights(model)
    run("restored", 1, GREEDY)

    errors = {}
    wrapped = torch.nn.ModuleDict({"policy": model})  # names 'policy.model....' that vLLM does not have
    try:
        engine.update_weights(wrapped)
    except WeightSyncError as e:
        errors["wrong_names"] = str(e)
    try:
        engine.update_weights(WithoutNorm(model))
    except WeightSyncError as e:
        errors["missing"] = str(e)
    release = threading.Event()
    try:
        engine.update_weights(NeverReady(release), timeout=2)
    except WeightSyncError as e:
        errors["timeout"] = str(e)
    try:
        engine.generate(prompts, 1, SamplingParams(**GREEDY))
    except WeightSyncError as e:
        errors["generate_during_sync"] = str(e)
    release.set()
    record["errors"] = errors
    engine.close()
    with open(out_path, "w") as f:
        json.dump(record, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
