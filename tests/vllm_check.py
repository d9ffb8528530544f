"""Drive a real VLLMEngine inside .venv-vllm and record what it did, for tests/test_vllm_engine.py.

Run as `.venv-vllm/bin/python tests/vllm_check.py MODEL_DIR OUT.json` (one engine, this process), or as
`... tests/vllm_check.py --ranks MODEL_DIR OUT_DIR` in each of two processes started like torchrun does
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). It only records; the test (in the main venv,
with the trainer's transformers) recomputes everything and judges it.

Recorded by one engine, in order:
  sleep_mode  building an engine with enable_sleep (refused on CPU)
  config      what vllm.LLM was built with (from the generation.vllm settings)
  greedy      generate(prompts, n=1, greedy); greedy_twice: the same with n=2
  sampled     generate(prompts, n=3, T=0.7, top-k 40, top-p 0.9, stop "\\n", seed 7), twice (same seed)
  perturbed   greedy again after update_weights(perturbed copy of the model)  (see PERTURBATION)
  restored    greedy again after update_weights(original model)
  errors      update_weights with wrong parameter names; with one parameter missing; with a model whose
              parameters never arrive (a rank that never joins the gather); generate after that
  recovered   greedy after a good update_weights following the failures
  rebuilt     greedy from a second engine, built by make_engine with other settings after closing the
              first (model.dtype auto: float32 on a CPU)
Recorded by each of two ranks (rank{r}.json): see ranks().
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict
from types import SimpleNamespace

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


def seen_by_vllm(engine) -> dict:
    """The settings the engine's vllm.LLM was built with."""
    config = engine.llm.llm_engine.vllm_config
    return {"max_model_len": config.model_config.max_model_len,
            "enforce_eager": config.model_config.enforce_eager,
            "gpu_memory_utilization": config.cache_config.gpu_memory_utilization,
            "tensor_parallel_size": config.parallel_config.tensor_parallel_size,
            "executor": str(config.parallel_config.distributed_executor_backend),
            "seed": config.model_config.seed}


def main(model_dir: str, out_path: str) -> None:
    from transformers import AutoModelForCausalLM

    from rlvr.config.parts import GenerationConfig, ModelConfig, VLLMConfig
    from rlvr.errors import UserError
    from rlvr.generation.base import SamplingParams
    from rlvr.generation.factory import make_engine
    from rlvr.generation.vllm import SleepError, VLLMEngine, WeightSyncError

    record: dict = {"timings": {}}
    try:  # checked before any model is loaded
        VLLMEngine(model_dir, settings=VLLMConfig(enable_sleep=True))
        record["sleep_mode"] = "available"
    except UserError as e:
        record["sleep_mode"] = str(e)
    started = time.monotonic()
    engine = VLLMEngine(model_dir, dtype="float32", seed=0, settings=VLLMConfig(max_model_len=1024))
    record["timings"]["engine_load_s"] = time.monotonic() - started
    record["config"] = seen_by_vllm(engine)
    record["slept"] = engine.sleep()  # built without sleep mode: nothing to release

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
    engine._pending_sync.join(timeout=60)
    record["needs_weights"] = engine.needs_weights
    try:  # the timed-out sync loaded nothing: the engine's weights are not to be trusted
        engine.generate(prompts, 1, SamplingParams(**GREEDY))
    except SleepError as e:
        errors["generate_after_failed_sync"] = str(e)
    record["errors"] = errors
    engine.update_weights(model)
    run("recovered", 1, GREEDY)
    engine.close()
    try:
        engine.generate(prompts, 1, SamplingParams(**GREEDY))
    except RuntimeError as e:
        errors["closed"] = str(e)

    started = time.monotonic()  # a second engine in the same process, other settings, as a run builds it
    cfg = SimpleNamespace(model=ModelConfig(dtype="auto"), generation=GenerationConfig(
        backend="vllm", vllm=VLLMConfig(max_model_len=512, gpu_memory_utilization=0.25, enforce_eager=True)))
    engine = make_engine(cfg, model_dir, tokenizer=None)
    record["timings"]["rebuild_s"] = time.monotonic() - started
    record["rebuilt_config"] = seen_by_vllm(engine)
    run("rebuilt", 1, GREEDY)
    engine.close()
    with open(out_path, "w") as f:
        json.dump(record, f, indent=1)


# --------------------------------------------------------------------------------------------------
# Two ranks in one torch.distributed job (gloo), each with its own prompts
# --------------------------------------------------------------------------------------------------
RANK_QUESTIONS = [["What is 2+3?", "Say hello."], ["Name a colour."]]  # different counts per rank
TINY_PERTURBATION = [("model.layers.1.self_attn.k_proj.weight", 1.5),
                     ("model.layers.0.mlp.gate_proj.weight", 0.5), ("model.norm.weight", 0.8)]


def ranks(model_dir: str, out_dir: str) -> None:
    """Per rank, recorded in OUT_DIR/rank{r}.json:
      tp2         an engine shared by both ranks (tensor_parallel_size 2): vLLM's group, greedy and sampled
                  samples of this rank's own prompts, greedy after update_weights(perturbed model)
      tp1         each rank's own engine, built after closing the shared one: the same greedy and sampled
      world_ok    the trainer's process group still works after both engines closed
      tp3_error   tensor_parallel_size 3 with two ranks
    """
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM

    from rlvr.config.parts import VLLMConfig
    from rlvr.errors import UserError
    from rlvr.generation.base import SamplingParams
    from rlvr.generation.vllm import VLLMEngine

    dist.init_process_group("gloo")  # the trainer's process group, started before any engine
    rank = dist.get_rank()
    record: dict = {"rank": rank, "timings": {}}

    def run_all(engine, key: str) -> None:
        prompts = [engine.tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                        add_generation_prompt=True)
                   for q in RANK_QUESTIONS[rank]]
        record[key]["prompts"] = prompts
        for name, n, params in (("greedy", 2, GREEDY), ("sampled", 3, SAMPLED)):
            record[key][name] = [asdict(s) for s in engine.generate(prompts, n, SamplingParams(**params))]
        record[key]["config"] = seen_by_vllm(engine)
        record[key]["tp_group"] = list(engine.placement.group)

    from vllm.distributed.parallel_state import get_tp_group

    def build(tp: int) -> VLLMEngine:
        started = time.monotonic()
        engine = VLLMEngine(model_dir, dtype="float32", seed=0, kv_cache_gib=0.25,
                            settings=VLLMConfig(tensor_parallel_size=tp, max_model_len=256))
        record["timings"][f"tp{tp}_build_s"] = time.monotonic() - started
        record[f"tp{tp}"] = {"vllm_tp_ranks": list(get_tp_group().ranks)}
        run_all(engine, f"tp{tp}")
        return engine

    engine = build(2)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, factor in TINY_PERTURBATION:
            params[name].mul_(factor)
    engine.update_weights(model)
    record["tp2"]["perturbed"] = [asdict(s) for s in engine.generate(
        record["tp2"]["prompts"], 1, SamplingParams(**GREEDY))]
    engine.close()

    build(1).close()

    total = torch.ones(1)
    dist.all_reduce(total)
    record["world_ok"] = total.item() == dist.get_world_size()
    try:
        VLLMEngine(model_dir, settings=VLLMConfig(tensor_parallel_size=3))
    except UserError as e:
        record["tp3_error"] = str(e)
    with open(f"{out_dir}/rank{rank}.json", "w") as f:
        json.dump(record, f, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    if sys.argv[1] == "--ranks":
        ranks(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
