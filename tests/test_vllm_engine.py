"""VLLMEngine: its import guard and weight-sync plumbing in the main venv (no vLLM), and a real engine
on SmolLM2-135M-Instruct in the separate .venv-vllm, judged against the main venv's transformers.

The real-engine part runs tests/vllm_check.py once inside .venv-vllm (vLLM pins its own transformers)
and compares what it recorded with a float32 transformers forward pass over the same tokens here.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from rlvr.errors import UserError
from rlvr.generation.base import SamplingParams
from rlvr.generation.vllm import (
    Placement,
    SleepError,
    SleepState,
    VLLMEngine,
    WeightSyncError,
    _run_with_deadline,
    build_requests,
    finish_reason,
    full_parameters,
    member_slice,
    tp_groups,
)

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
CHECK_SCRIPT = Path(__file__).with_name("vllm_check.py")

# Max |logprob difference| between vLLM (float32, CPU) and transformers (float32) over the same tokens.
# Measured on SmolLM2-135M: max 7.1e-5, mean 5.2e-6 over this test's 79 tokens; max 5.1e-5, mean 5.2e-6
# over 973 sampled tokens (T=1). That is float32 rounding of different kernels (vLLM's fused qkv, paged
# attention, fused RMSNorm vs transformers' eager ops) accumulated over 30 layers. 1e-3 leaves >10x
# headroom and is >1000x below the shift the weight perturbation causes (max 1.4, mean 0.46). In bfloat16
# the same comparison gives max 0.28, mean 0.029 and greedy agreeing on 2 of 4 prompts, so this check
# runs vLLM in float32.
LOGPROB_TOL = 1e-3


# --------------------------------------------------------------------------------------------------
# Main venv: no vLLM needed
# --------------------------------------------------------------------------------------------------
def test_importing_the_module_does_not_import_vllm():
    code = "import sys, rlvr.generation.vllm; print('vllm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed in this venv")
def test_engine_without_vllm_names_the_extra():
    with pytest.raises(UserError, match=r"pip install 'rlvr\[vllm\]'.*scripts/vllm_env\.sh") as err:
        VLLMEngine("/nonexistent/model")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("reason, stop_reason, expected", [
    ("length", None, "length"), ("stop", None, "eos"), ("stop", 2, "eos"), ("stop", "\n", "stop")])
def test_finish_reason_mapping(reason, stop_reason, expected):
    assert finish_reason(reason, stop_reason) == expected


def test_finish_reason_rejects_an_aborted_request():
    with pytest.raises(RuntimeError, match="abort"):
        finish_reason("abort", None)


class TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.body = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight


def test_full_parameters_covers_each_parameter_once_in_small_buckets():
    model = TiedLM()
    buckets = list(full_parameters(model, bucket_bytes=100))
    names = [name for bucket in buckets for name, _ in bucket]
    assert names == ["embed.weight", "body.weight", "body.bias"]  # the tied head only once
    assert len(buckets) == 2  # the 160-byte embedding alone fills the first bucket
    tensors = dict(pair for bucket in buckets for pair in bucket)
    assert torch.equal(tensors["body.weight"], model.body.weight)


def test_full_parameters_puts_the_tensors_on_the_engine_device():
    model = TiedLM()
    tensors = [t for bucket in full_parameters(model, device=torch.device("meta")) for _, t in bucket]
    assert [t.device.type for t in tensors] == ["meta"] * 3
    assert all(p.device.type == "cpu" for p in model.parameters())  # the trainer's copy stays where it is


def test_full_parameters_strips_the_deepspeed_engine_prefix():
    wrapper = torch.nn.Module()
    wrapper.module = TiedLM()  # a DeepSpeed engine names the wrapped model's parameters module.*
    names = [name for bucket in full_parameters(wrapper) for name, _ in bucket]
    assert names == ["embed.weight", "body.weight", "body.bias"]


ZERO3_SCRIPT = """
import os, socket, torch
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
import deepspeed
from rlvr.generation.vllm import full_parameters

deepspeed.init_distributed(dist_backend="gloo")
def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Linear(8, 8))
reference = build().state_dict()
with deepspeed.zero.Init(config_dict_or_path={"train_micro_batch_size_per_gpu": 1,
                                              "zero_optimization": {"stage": 3}}):
    model = build()
assert all(p.numel() == 0 for p in model.parameters()), "parameters are not partitioned"
got = dict(pair for bucket in full_parameters(model, bucket_bytes=100) for pair in bucket)
assert sorted(got) == sorted(reference), sorted(got)
assert all(torch.equal(got[n], reference[n]) for n in got), "gathered values differ"
assert all(p.numel() == 0 for p in model.parameters()), "parameters stay gathered"
print("ok")
"""


@pytest.mark.slow
def test_full_parameters_gathers_zero3_partitioned_parameters():
    pytest.importorskip("deepspeed")
    out = subprocess.run([sys.executable, "-c", ZERO3_SCRIPT], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300, check=False)
    assert out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_deadline_turns_a_hang_into_an_error_naming_the_stage():
    release, stage = threading.Event(), ["gathering layer 7"]
    try:
        with pytest.raises(WeightSyncError, match=r"did not finish in 0s; stuck while gathering layer 7"):
            _run_with_deadline(release.wait, timeout=0.2, stage=stage)
    finally:
        release.set()


def test_deadline_reraises_a_failure_with_its_stage():
    def work() -> None:
        raise ValueError("There is no module named 'policy'. The available parameters are: " + "x" * 5000)

    with pytest.raises(WeightSyncError, match=r"failed while loading: There is no module named 'policy'$"):
        _run_with_deadline(work, timeout=5, stage=["loading"])


# -- placement and tensor-parallel groups (pure) ---------------------------------------------------
def test_tp_groups_are_consecutive_ranks():
    assert tp_groups(8, 2) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert tp_groups(4, 1) == [[0], [1], [2], [3]]
    assert tp_groups(4, 4, ranks_per_node=4) == [[0, 1, 2, 3]]


@pytest.mark.parametrize("world, tp, per_node, message", [
    (4, 3, None, r"tensor_parallel_size: 3 must divide the number of ranks \(4\)"),
    (8, 4, 2, r"tensor_parallel_size: 4 must divide the ranks per node \(2\).*span two nodes"),
    (4, 0, None, r"tensor_parallel_size: 0 must divide")])
def test_tp_groups_refuse_what_does_not_fit(world, tp, per_node, message):
    with pytest.raises(UserError, match=message) as err:
        tp_groups(world, tp, per_node)
    assert "\n" not in str(err.value)


def test_placement_of_a_rank_in_a_group():
    where = Placement(rank=5, world_size=8, tp=2, joined=True)
    assert where.group == [4, 5] and where.member == 1
    # one seed per group (its engines must sample alike), different between groups
    seeds = [Placement(rank=r, world_size=8, tp=2).engine_seed(10) for r in range(8)]
    assert seeds == [10, 10, 11, 11, 12, 12, 13, 13]


def test_a_process_alone_gets_one_engine_and_cannot_share_it():
    # in a fresh process: in-process trainer tests leave this one's process group started
    script = (
        "import pytest, torch\n"
        "from rlvr.errors import UserError\n"
        "from rlvr.generation.vllm import Placement, placement\n"
        "assert not torch.distributed.is_initialized()\n"
        "assert placement(1) == Placement(rank=0, world_size=1, tp=1, joined=False)\n"
        "with pytest.raises(UserError, match='tensor_parallel_size: 2 needs 2 ranks.*runs alone'):\n"
        "    placement(2)\n"
        "print('OK')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr[-2000:]


def test_member_slice_finds_each_ranks_requests():
    sizes = [2, 0, 3]  # a rank may have no prompts and still takes part in the group's generate
    assert [member_slice(sizes, m) for m in range(3)] == [slice(0, 2), slice(2, 2), slice(2, 5)]
    gathered = ["a0", "a1", "c0", "c1", "c2"]
    assert gathered[member_slice(sizes, 2)] == ["c0", "c1", "c2"]


def test_requests_carry_distinct_seeds_and_greedy_repeats():
    sampling = SamplingParams(temperature=0.7, seed=7, stop=["x"])
    sampled = build_requests(["p", "q"], [[1], [2, 3]], 4, sampling)
    assert [r.params["seed"] for r in sampled] == [7, 11]  # seed + prompt index * n: no two prompts alike
    assert [(r.params["n"], r.repeat) for r in sampled] == [(4, 1), (4, 1)]
    assert sampled[1].prompt_ids == [2, 3] and sampled[0].params["stop"] == ["x"]
    greedy = build_requests(["p"], [[1]], 3, SamplingParams(temperature=0.0))
    assert (greedy[0].params["n"], greedy[0].repeat, greedy[0].params["seed"]) == (1, 3, None)


# -- sleep state (pure) ------------------------------------------------------------------------------
def test_level_two_sleep_needs_a_sync_before_generating():
    state = SleepState()
    assert state.tags_before_generate() == []  # awake, weights from the checkpoint
    assert state.fall_asleep(2)
    with pytest.raises(SleepError, match=r"sleep\(level=2\) discarded them.*call update_weights"):
        state.tags_before_generate()
    assert state.tags_before_sync() == ["weights"]  # the KV cache stays asleep while weights load
    state.woke("weights")
    state.synced()
    assert state.tags_before_generate() == ["kv_cache"]
    state.woke("kv_cache")
    assert state.tags_before_generate() == [] and state.tags_before_sync() == []


def test_level_one_sleep_wakes_weights_then_kv_cache_without_a_sync():
    state = SleepState()
    assert state.fall_asleep(1)
    assert state.tags_before_generate() == ["weights", "kv_cache"]  # the CPU copy comes back


def test_sleeping_twice_does_nothing_and_levels_are_checked():
    state = SleepState()
    assert state.fall_asleep(1)
    assert not state.fall_asleep(2)  # already asleep: no second sleep, and the weights were not discarded
    assert state.weights_usable
    with pytest.raises(ValueError, match="level must be 1 or 2"):
        SleepState().fall_asleep(3)


def test_a_failed_sync_leaves_the_weights_unusable_until_one_succeeds():
    state = SleepState()
    state.lose_weights("the last weight sync did not complete")
    with pytest.raises(SleepError, match="last weight sync did not complete"):
        state.tags_before_generate()
    state.synced()
    assert state.tags_before_generate() == []


# --------------------------------------------------------------------------------------------------
# .venv-vllm: a real engine
# --------------------------------------------------------------------------------------------------
needs_vllm_venv = pytest.mark.skipif(not VLLM_PYTHON.exists(),
                                     reason=f"{VLLM_PYTHON} missing: create it with scripts/vllm_env.sh")


def _load_check_module():
    spec = importlib.util.spec_from_file_location("vllm_check", CHECK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load_check_module()  # shares the prompts, sampling settings and perturbation


@pytest.fixture(scope="module")
def model_dir() -> str:
    from rlvr.models import SMOLLM2, resolve_model

    try:
        return resolve_model(SMOLLM2)
    except UserError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def record(model_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("vllm") / "record.json"
    # this checkout's rlvr, whatever the venv's editable install points at
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([str(VLLM_PYTHON), str(CHECK_SCRIPT), model_dir, str(out)], cwd=out.parent,
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads(out.read_text())
    print("vllm_check timings:", {k: round(v, 1) for k, v in record["timings"].items()})
    return record


@pytest.fixture(scope="module")
def hf(model_dir):
    from rlvr.models import load_model, load_tokenizer

    return load_model(model_dir, "float32").eval(), load_tokenizer(model_dir)


@torch.no_grad()
def hf_logprobs(model, sample: dict, temperature: float) -> torch.Tensor:
    """log softmax(logits / T) of each response token, teacher-forced (T = 1 for greedy samples)."""
    ids = torch.tensor([sample["prompt_ids"] + sample["response_ids"]])
    logits = model(ids).logits[0, len(sample["prompt_ids"]) - 1 : -1].float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(-1, torch.tensor(sample["response_ids"])[:, None]).squeeze(-1)


@torch.no_grad()
def hf_greedy(model, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    out = model.generate(torch.tensor([prompt_ids]), do_sample=False, max_new_tokens=max_new_tokens)
    return out[0, len(prompt_ids):].tolist()


def logprob_gap(model, samples: list[dict], temperature: float) -> torch.Tensor:
    return torch.cat([(hf_logprobs(model, s, temperature) - torch.tensor(s["logprobs"])).abs()
                      for s in samples])


@needs_vllm_venv
@pytest.mark.vllm
def test_module_does_not_import_vllm_where_vllm_is_installed():
    code = "import sys, rlvr.generation.vllm; print('vllm' in sys.modules)"
    out = subprocess.run([str(VLLM_PYTHON), "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_samples_have_the_interface_structure(record, hf):
    _, tokenizer = hf
    eos = tokenizer.eos_token_id
    assert [s["prompt_index"] for s in record["greedy"]] == [0, 1]
    assert [s["prompt_index"] for s in record["sampled"]] == [0, 0, 0, 1, 1, 1]  # grouped by prompt
    for s in record["greedy"] + record["sampled"]:
        prompt = record["prompts"][s["prompt_index"]]
        assert s["prompt"] == prompt
        assert s["prompt_ids"] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert len(s["logprobs"]) == len(s["response_ids"]) > 0
        assert all(lp <= 0.0 for lp in s["logprobs"])
        assert s["finish_reason"] in ("eos", "length", "stop")
        assert (s["response_ids"][-1] == eos) == (s["finish_reason"] == "eos")
        if s["finish_reason"] == "length":
            assert len(s["response_ids"]) == check.SAMPLED["max_new_tokens"]
        if s["finish_reason"] == "stop":
            assert "\n" not in s["text"]  # the text ends before the stop string
        else:
            assert s["text"] == tokenizer.decode(s["response_ids"], skip_special_tokens=True)
    assert {s["finish_reason"] for s in record["sampled"]} >= {"eos"}


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_greedy_matches_transformers_greedy(record, hf):
    model, _ = hf
    for s in record["greedy"]:
        assert s["response_ids"] == hf_greedy(model, s["prompt_ids"], check.GREEDY["max_new_tokens"])


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_greedy_with_n_above_one_repeats_the_answer(record):
    assert [s["prompt_index"] for s in record["greedy_twice"]] == [0, 0, 1, 1]
    assert [s["response_ids"] for s in record["greedy_twice"]] == [
        s["response_ids"] for s in record["greedy"] for _ in range(2)]


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_logprobs_match_a_transformers_forward_pass(record, hf):
    model, _ = hf
    greedy = logprob_gap(model, record["greedy"], 1.0)
    # top-k 40 / top-p 0.9 were active: these are still the untruncated softmax(logits / T) values
    sampled = logprob_gap(model, record["sampled"], check.SAMPLED["temperature"])
    gap = torch.cat([greedy, sampled])
    print(f"vllm vs transformers logprobs over {gap.numel()} tokens: max {gap.max():.2e}, "
          f"mean {gap.mean():.2e}")
    assert gap.max() < LOGPROB_TOL


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_a_fixed_seed_reproduces_the_samples(record):
    assert [s["response_ids"] for s in record["sampled_again"]] == [s["response_ids"] for s in record["sampled"]]
    assert len({tuple(s["response_ids"]) for s in record["sampled"]}) > 2  # the n samples differ


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_update_weights_changes_the_engine_and_restores_it(record, hf):
    model, _ = hf
    original = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        check.perturb(model)
        for s in record["perturbed"]:
            assert s["response_ids"] == hf_greedy(model, s["prompt_ids"], check.GREEDY["max_new_tokens"])
        assert logprob_gap(model, record["perturbed"], 1.0).max() < LOGPROB_TOL
    finally:
        model.load_state_dict(original)
    # the perturbed engine really is another model: far outside the tolerance of the original one
    shift = logprob_gap(model, record["perturbed"], 1.0)
    print(f"perturbed engine vs original model: max {shift.max():.2e}, mean {shift.mean():.2e}")
    assert shift.max() > 50 * LOGPROB_TOL
    assert [s["response_ids"] for s in record["restored"]] == [s["response_ids"] for s in record["greedy"]]
    restored = torch.tensor([lp for s in record["restored"] for lp in s["logprobs"]])
    before = torch.tensor([lp for s in record["greedy"] for lp in s["logprobs"]])
    assert torch.allclose(restored, before, atol=1e-6)


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_weight_sync_failures_are_one_clear_error(record):
    errors = record["errors"]
    assert "There is no module or parameter named 'policy'" in errors["wrong_names"]
    assert len(errors["wrong_names"]) < 500  # not vLLM's list of every parameter
    assert "model.norm.weight" in errors["missing"]
    assert "did not finish in 2s" in errors["timeout"]
    assert "weight sync that timed out is still running" in errors["generate_during_sync"]


@needs_vllm_venv
@pytest.mark.vllm
def test_sleep_mode_is_refused_clearly_on_cpu(record):
    if record["sleep_mode"] == "available":
        pytest.skip("this vLLM platform supports sleep mode")
    assert record["sleep_mode"].startswith("generation.vllm.enable_sleep: sleep mode needs a CUDA, ROCm or "
                                           "XPU device; this vLLM runs on 'cpu'")
    assert "\n" not in record["sleep_mode"]
    assert record["slept"] is False  # sleep() on an engine built without sleep mode releases nothing


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_the_settings_reach_vllm(record):
    assert record["config"] == {"max_model_len": 1024, "enforce_eager": True, "gpu_memory_utilization": 0.3,
                                "tensor_parallel_size": 1, "executor": "uni", "seed": 0}
    rebuilt = {**record["config"], "max_model_len": 512, "gpu_memory_utilization": 0.25}
    assert record["rebuilt_config"] == rebuilt


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_after_failed_syncs_the_engine_refuses_until_a_sync_succeeds(record):
    assert record["needs_weights"] is True
    refusal = record["errors"]["generate_after_failed_sync"]
    assert "not usable (the last weight sync did not complete)" in refusal
    assert "no weight sync succeeded since: call update_weights(model)" in refusal
    assert [s["response_ids"] for s in record["recovered"]] == [s["response_ids"] for s in record["greedy"]]


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_an_engine_closed_and_rebuilt_in_one_process(record):
    assert record["errors"]["closed"] == "this vllm engine is closed"
    assert [s["response_ids"] for s in record["rebuilt"]] == [s["response_ids"] for s in record["greedy"]]


# --------------------------------------------------------------------------------------------------
# .venv-vllm: two ranks (two processes, gloo), vLLM's external launcher
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tp_model_dir(model_dir, tmp_path_factory) -> str:
    """A 2-layer Llama with SmolLM2's tokenizer whose 2 attention heads split over 2 ranks (SmolLM2's 9
    cannot); head size 64, which vLLM's CPU attention supports. A wide initialisation makes its
    next-token distributions peaked (top log-probability about -1.5, not a near-uniform -10.8), so greedy
    decoding has no near-ties and a weight change shows."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlvr.models import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=256, initializer_range=0.3, tie_word_embeddings=False,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    out = tmp_path_factory.mktemp("tp") / "model"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def ranks(tp_model_dir, tmp_path_factory) -> list[dict]:
    """tests/vllm_check.py --ranks in two processes, started as torchrun would start them."""
    import socket

    out = tmp_path_factory.mktemp("ranks")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2"}
        env.pop("VIRTUAL_ENV", None)
        command = [str(VLLM_PYTHON), str(CHECK_SCRIPT), "--ranks", tp_model_dir, str(out)]
        procs.append(subprocess.Popen(command, cwd=out, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    errors = [proc.communicate(timeout=900)[1] for proc in procs]
    for proc, err in zip(procs, errors):
        assert proc.returncode == 0, err[-4000:]
    records = [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]
    print("vllm_check --ranks timings:", [{k: round(v, 1) for k, v in r["timings"].items()} for r in records])
    return records


@pytest.fixture(scope="module")
def tp_hf(tp_model_dir):
    from rlvr.models import load_model

    return load_model(tp_model_dir, "float32").eval()


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_two_ranks_share_one_engine_through_the_external_launcher(ranks):
    for r in ranks:
        assert r["tp2"]["vllm_tp_ranks"] == r["tp2"]["tp_group"] == [0, 1]  # vLLM's group is ours
        assert r["tp2"]["config"]["executor"] == "external_launcher"
        assert r["tp2"]["config"]["tensor_parallel_size"] == 2
        assert r["tp1"]["vllm_tp_ranks"] == r["tp1"]["tp_group"] == [r["rank"]]
    # one seed per engine: the group's members share theirs, separate engines differ
    assert [r["tp2"]["config"]["seed"] for r in ranks] == [0, 0]
    assert [r["tp1"]["config"]["seed"] for r in ranks] == [0, 1]


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_each_rank_of_a_group_gets_the_samples_of_its_own_prompts(ranks, tp_hf):
    for r in ranks:
        prompts = r["tp2"]["prompts"]
        assert len(prompts) == len(check.RANK_QUESTIONS[r["rank"]])
        greedy, sampled = r["tp2"]["greedy"], r["tp2"]["sampled"]
        assert [s["prompt_index"] for s in greedy] == [i for i in range(len(prompts)) for _ in range(2)]
        assert [s["prompt_index"] for s in sampled] == [i for i in range(len(prompts)) for _ in range(3)]
        assert all(s["prompt"] == prompts[s["prompt_index"]] for s in greedy + sampled)
        for s in greedy:
            assert s["response_ids"] == hf_greedy(tp_hf, s["prompt_ids"], check.GREEDY["max_new_tokens"])
        gap = torch.cat([logprob_gap(tp_hf, greedy, 1.0),
                         logprob_gap(tp_hf, sampled, check.SAMPLED["temperature"])])
        print(f"rank {r['rank']}, tensor-parallel engine vs transformers over {gap.numel()} tokens: "
              f"max {gap.max():.2e}")
        assert gap.max() < LOGPROB_TOL


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_a_shared_engine_gives_each_rank_what_its_own_engine_would(ranks):
    for r in ranks:
        for kind in ("greedy", "sampled"):
            assert [s["response_ids"] for s in r["tp2"][kind]] == [s["response_ids"] for s in r["tp1"][kind]]
    assert ranks[0]["tp2"]["sampled"][0]["response_ids"] != ranks[1]["tp2"]["sampled"][0]["response_ids"]


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_a_weight_sync_reaches_both_halves_of_a_shared_engine(ranks, tp_hf):
    original = {k: v.clone() for k, v in tp_hf.state_dict().items()}
    try:
        params = dict(tp_hf.named_parameters())
        with torch.no_grad():
            for name, factor in check.TINY_PERTURBATION:
                params[name].mul_(factor)
        for r in ranks:
            perturbed = r["tp2"]["perturbed"]
            for s in perturbed:
                assert s["response_ids"] == hf_greedy(tp_hf, s["prompt_ids"], check.GREEDY["max_new_tokens"])
            assert logprob_gap(tp_hf, perturbed, 1.0).max() < LOGPROB_TOL
    finally:
        tp_hf.load_state_dict(original)
    for r in ranks:  # and it is another model than before the sync
        before = [s["response_ids"] for s in r["tp2"]["greedy"][::2]]  # one of the two answers per prompt
        assert [s["response_ids"] for s in r["tp2"]["perturbed"]] != before


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_closing_engines_keeps_the_trainers_process_group(ranks):
    assert all(r["world_ok"] for r in ranks)  # an all_reduce after both engines were closed


@needs_vllm_venv
@pytest.mark.vllm
@pytest.mark.slow
def test_a_tensor_parallel_size_that_does_not_divide_the_ranks_is_one_clear_error(ranks):
    for r in ranks:
        assert r["tp3_error"] == ("generation.vllm.tensor_parallel_size: 3 must divide the number of ranks "
                                  "(2); each group of that many consecutive ranks shares one engine")
