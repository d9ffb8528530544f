"""A CPU stand-in for a GPU: it fails where rlvr would put a tensor on a device other than its model's.

On a CPU `torch.zeros(n)` and `torch.zeros(n, device=dev)` are the same tensor, so a forgotten `device=`
only shows on a GPU. This audit tells them apart by where each tensor came from. Its device is `cpu:0`,
a real torch device whose tensors are plain CPU tensors (every kernel runs), yet an argument distinct
from plain `cpu`. Run rlvr with RLVR_DEVICE=cpu:0: where rlvr means "the model's device" it passes
`cpu:0`, where it forgot (`torch.zeros(n)`) or hard-coded the host (`device="cpu"`) it does not. Inside
`with DeviceAudit():` a TorchFunctionMode sees every torch call and tags tensors by identity:

  device  made by a factory given `cpu:0`, by `.to(cpu:0)`, or by any op from a device input; every
          parameter and buffer of a module moved with `.to(cpu:0)`, or moved by DeepSpeed (it moves the
          modules it wraps to its accelerator: `cpu` here, the rank's GPU on a GPU). In first-party code
          `.device` of a device tensor reads `cpu:0`, so code that follows `x.device` stays there.
  host    made by a factory called from first-party code (rlvr, verifiers, tests) without `cpu:0`;
          `.cpu()` or `.to(elsewhere)` of a tensor or a module called from first-party code; made by an
          op from host inputs only; and a parameter never moved (a module left on the host).
  none    what transformers, DeepSpeed and torch make for themselves: trusted, never an error. A
          library's `.to("cpu")` of a tensor keeps its tag (DeepSpeed's accelerator device again).

It raises DeviceMismatch where CUDA refuses: one call given a device tensor and a host tensor of dim > 0
("Expected all tensors to be on the same device"); a host tensor indexed by device indices; a random op
whose torch.Generator is on the other device; `.numpy()` of a device tensor in first-party code; a
device tensor pickled by an object collective (on a GPU it lands on the sender's GPU index). Allowed, as
CUDA allows (ATen's checks): 0-dim host tensors as operands (CPU scalars); host indices reading a device
tensor (`x[idx]`), indices of any device writing one (`x[idx] = v` and index_put_ move them to x's
device; v must be on x's device or 0-dim), 0-dim indices anywhere (read as numbers); copies across
devices (`copy_`, slice assignment `x[a:b] = v`, `.to`); values pulled out by `.tolist()` / `.item()`.

Why this is enough: on a GPU a tensor lives where it was made, and ops need their operands in one place.
The audit places every first-party tensor where a GPU run with RLVR_DEVICE=cuda:N would (the same
`device` argument, cuda:N read as cpu:0), follows it from op to op, and refuses the mixes CUDA refuses,
so a tensor rlvr puts on the wrong device fails here where it meets the model's tensors, with the line
that made it. What it cannot see: tensors a library hands to rlvr (a tokenizer's return_tensors,
torch.from_numpy), which stay untagged; ops in other processes (vLLM, verifier workers: tests run with
reward.workers=0) and in threads started before the `with` (the mode follows threads started inside
it); ops stricter than the rule above (a 0-dim host operand of a matmul); a computation that stays on
the host throughout (no mix: it would run on a GPU machine too, only slower); and what a GPU refuses
for other reasons (dtypes, memory, NCCL).
"""
from __future__ import annotations

import io
import pickle
import socket
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as dist
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakTensorKeyDictionary

import rlvr
import verifiers
from rlvr import distributed as D

REPO = Path(__file__).resolve().parents[1]
# the packages as imported, wherever they are
FIRST_PARTY = tuple(f"{Path(m.__file__).parent}/" for m in (rlvr, verifiers)) + (f"{REPO / 'tests'}/",)
TORCH = f"{Path(torch.__file__).parent}/"
DEVICE = "device"  # the tag of a device tensor; a host tensor's tag says where it was made
UNMOVED = "a parameter never moved to the device"

FACTORIES = {"tensor", "as_tensor", "asarray", "scalar_tensor", "zeros", "ones", "full", "empty",
             "empty_strided", "eye", "arange", "range", "linspace", "logspace", "rand", "randn", "randint",
             "randperm", "normal", "tril_indices", "triu_indices"}
LIKE = {"zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "randint_like",
        "new_zeros", "new_ones", "new_full", "new_empty", "new_empty_strided", "new_tensor"}
ACROSS = {"copy_", "_has_compatible_shallow_copy_type", "is_same_size", "is_set_to"}  # fine across devices
INDEXING = {"__getitem__", "__setitem__", "index_put_", "index_put"}
SAME_DEVICE = "Expected all tensors to be on the same device"


class DeviceMismatch(BaseException):
    """What a GPU run would raise as a RuntimeError. Not an Exception, like KeyboardInterrupt, so that no
    `except Exception` on the way hides it (the verifier pool scores a crashing verifier as one failed
    sample)."""


class DeviceAudit(TorchFunctionMode):
    def __init__(self, device: torch.device = torch.device("cpu", 0)):
        super().__init__()
        assert device.index is not None, "the sentinel needs an index, or it is just the host"
        self.device = device
        self.tags = WeakTensorKeyDictionary()
        self._patches = ExitStack()

    def kind(self, t: torch.Tensor) -> str | None:
        """DEVICE, a host tensor's story, or None (a library's own tensor)."""
        tag = self.tags.get(t)
        return UNMOVED if tag is None and isinstance(t, nn.Parameter) else tag

    def _is_host(self, t: torch.Tensor) -> bool:
        return self.kind(t) not in (None, DEVICE)

    def _sentinel(self, dev) -> bool:
        return isinstance(dev, (str, torch.device)) and torch.device(dev) == self.device

    def _off_device(self, keep: str | None) -> str | None:
        """Made or moved off the device: a host tensor if first-party code asked, else it keeps `keep`."""
        frame = _caller()
        return f"a host tensor made at {_where(frame)}" if _first_party(frame) else keep

    # ---- the mode ---------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "__get__" and getattr(func, "__self__", None) is torch.Tensor.device:
            # first-party code sees the sentinel; libraries the device their accelerator names (`cpu`)
            return self.device if self.kind(args[0]) == DEVICE and _first_party(_caller()) else func(*args)
        inputs = list(_tensors((args, kwargs)))
        out_kind = self._placement(func, name, args, kwargs, inputs)
        generator = kwargs.get("generator")
        if generator is not None and out_kind is not None:
            gen_on_device = getattr(generator, "on_audit_device", False)
            if gen_on_device != (out_kind == DEVICE):
                places = ("device", "host") if gen_on_device else ("host", "device")
                raise DeviceMismatch(f"{_op_name(func)} at {_first_party_site()} samples {places[1]} tensors "
                                     f"with a {places[0]} torch.Generator: on a GPU this raises 'Expected a "
                                     f"'{'cpu' if gen_on_device else 'cuda'}' device type for generator'")
        if name in ("numpy", "__array__") and self.kind(args[0]) == DEVICE and _first_party(_caller()):
            raise DeviceMismatch(f"Tensor.{name} of a device tensor at {_first_party_site()}: on a GPU this "
                                 f"raises 'can't convert cuda:0 device type tensor to numpy'")

        result = func(*args, **kwargs)
        if name in ("to", "cpu") and result is args[0] and out_kind != self.kind(args[0]):
            result = result.clone()  # on a GPU a move makes a new tensor: the original stays where it was
        if out_kind is not None:
            seen = {id(x) for x in inputs}
            for t in _tensors(result):
                if id(t) not in seen:  # an in-place op's tensor stays what it was
                    self.tags[t] = out_kind
        return result

    def _placement(self, func, name, args, kwargs, inputs) -> str | None:
        """The output's tag, after checking that CUDA would take the call."""
        if name in ("to", "cpu") and isinstance(args[0], torch.Tensor):
            if len(args) > 1 and isinstance(args[1], torch.Tensor):  # .to(other): where other is
                dev = self.device if self.kind(args[1]) == DEVICE else args[1].device
            else:
                dev = "cpu" if name == "cpu" else torch._C._nn._parse_to(*args[1:], **kwargs)[0]
            if dev is None:
                return self.kind(args[0])
            return DEVICE if self._sentinel(dev) else self._off_device(keep=self.kind(args[0]))
        if kwargs.get("device") is not None:
            return DEVICE if self._sentinel(kwargs["device"]) else self._off_device(keep=None)
        if name in FACTORIES and not inputs:
            return self._off_device(keep=None)
        if name in LIKE:
            return self.kind(args[0])
        if name in ACROSS or (name == "__set__" and func.__self__ is torch.Tensor.data):  # `p.data = x` too
            return None
        self._check_operands(func, name, args, kwargs, inputs)
        kinds = [self.kind(x) for x in inputs]
        return DEVICE if DEVICE in kinds else next((k for k in kinds if k is not None), None)

    def _check_operands(self, func, name, args, kwargs, inputs) -> None:
        operands, refusal = inputs, SAME_DEVICE
        if name in INDEXING:
            base, index = args[0], args[1]
            value = args[2] if len(args) > 2 else kwargs.get("values")
            indices = [i for i in _tensors(index) if i.dim() > 0]  # a 0-dim index is read as a number
            parts = index if isinstance(index, tuple) else (index,)
            # `x[a:b] = v` copies v over from anywhere; `x[idx] = v` (index_put_) needs v on x's device
            basic = name == "__setitem__" and not indices and not any(isinstance(i, list) for i in parts)
            # reading takes host indices into a device tensor, not device indices into a host one;
            # writing (index_put_) moves any indices to the written tensor's device
            operands = [base]
            if name == "__getitem__" and self.kind(base) != DEVICE:
                operands = [base, *indices]
                refusal = "indices should be either on cpu or on the same device as the indexed tensor"
            if isinstance(value, torch.Tensor) and value.dim() > 0 and not basic:
                operands.append(value)
        host = [x for x in operands if self._is_host(x) and x.dim() > 0]  # 0-dim: a CPU scalar, allowed
        if host and any(self.kind(x) == DEVICE for x in operands):
            raise DeviceMismatch(f"{_op_name(func)} at {_first_party_site()} mixes device tensors with "
                                 f"{self.kind(host[0])} (shape {list(host[0].shape)}): on a GPU this raises "
                                 f"'{refusal}'")

    # ---- patches, alive only inside the `with` ----------------------------------------------------
    def __enter__(self):
        audit = self
        module_to, new_parameter, thread_run = nn.Module.to, nn.Parameter.__new__, threading.Thread.run

        class Generator(torch._C.Generator, metaclass=_AnyGenerator):
            def __init__(self, device="cpu"):
                super().__init__()
                self.on_audit_device = audit._sentinel(device)

        def to(module, *args, **kwargs):  # .to() keeps the Parameter objects: tag them afterwards
            out = module_to(module, *args, **kwargs)
            dev = torch._C._nn._parse_to(*args, **kwargs)[0]
            # a library moving a whole module is DeepSpeed wrapping it: on a GPU, to the rank's device
            kind = None if dev is None else DEVICE if audit._sentinel(dev) else audit._off_device(keep=DEVICE)
            if kind is not None:
                for t in (*module.parameters(), *module.buffers()):
                    audit.tags[t] = kind
            return out

        def parameter(cls, data=None, requires_grad=True):  # a parameter is where its data is
            p = new_parameter(cls, data, requires_grad)
            if data is not None and audit.kind(data) is not None:
                audit.tags[p] = audit.kind(data)
            return p

        def run(thread):  # the mode is per thread: it follows the threads started inside the `with`
            TorchFunctionMode.__enter__(audit)
            try:
                thread_run(thread)
            finally:
                TorchFunctionMode.__exit__(audit, None, None, None)

        patch = self._patches.enter_context
        patch(mock.patch.object(threading.Thread, "run", run))
        patch(mock.patch.object(torch, "Generator", Generator))
        patch(mock.patch.object(nn.Module, "to", to))
        patch(mock.patch.object(nn.Parameter, "__new__", staticmethod(parameter)))
        for name in ("all_gather_object", "broadcast_object_list", "gather_object", "send_object_list"):
            patch(mock.patch.object(dist, name, self._without_device_tensors(getattr(dist, name))))
        for name in ("all_gather_object", "broadcast_object"):  # at one rank rlvr's skip torch.distributed
            patch(mock.patch.object(D, name, self._without_device_tensors(getattr(D, name))))
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._patches.close()

    def _without_device_tensors(self, collective):
        """An object collective pickles its tensors: a CUDA tensor lands on the receiver as a tensor on the
        sender's GPU index (another rank's GPU, or one the node lacks)."""
        audit = self

        class Scan(pickle.Pickler):
            def persistent_id(self, obj):
                if not isinstance(obj, torch.Tensor):
                    return None
                if audit.kind(obj) == DEVICE:
                    raise DeviceMismatch(f"{collective.__name__} at {_first_party_site()} sends a device "
                                         f"tensor of shape {list(obj.shape)}: move it to the host first")
                return id(obj)  # the tags matter, not the data

        def checked(*args, **kwargs):
            try:
                Scan(io.BytesIO()).dump((args, kwargs))
            except (pickle.PicklingError, TypeError, AttributeError):
                pass  # not picklable: the collective itself will say so
            return collective(*args, **kwargs)

        return checked


class _AnyGenerator(type(torch._C.Generator)):
    """torch.Generator is replaced during the audit; `isinstance(g, torch.Generator)` stays true of all."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, torch._C.Generator)


def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for item in x:
            yield from _tensors(item)
    elif isinstance(x, dict):
        for item in x.values():
            yield from _tensors(item)


def _first_party(frame) -> bool:
    return frame.f_code.co_filename.startswith(FIRST_PARTY) and frame.f_code.co_filename != __file__


def _where(frame) -> str:
    path = Path(frame.f_code.co_filename)
    return f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{frame.f_lineno}"


def _caller():
    """The frame that made this torch call: torch's own Python code, and a library's `.to` and `.device`
    that pass a module's on (transformers' PreTrainedModel.to and .device), count as their caller's."""
    frame = sys._getframe(1)
    while (frame.f_code.co_filename.startswith(TORCH) or frame.f_code.co_filename == __file__
           or (frame.f_code.co_name in ("to", "device") and not _first_party(frame))):
        frame = frame.f_back
    return frame


def _first_party_site() -> str:
    """The innermost first-party line on the stack: where rlvr (or a test) made the call."""
    frame = sys._getframe(1)
    while frame is not None and not _first_party(frame):
        frame = frame.f_back
    return _where(frame) if frame is not None else "(no first-party frame)"


def _op_name(func) -> str:
    owner = getattr(func, "__qualname__", "").split(".")[0]
    module = getattr(func, "__module__", None)
    module = {"torch._C._nn": "torch.nn.functional"}.get(module, module)
    prefix = {"TensorBase": "Tensor", "_VariableFunctionsClass": "torch"}.get(owner, module)
    return f"{prefix}.{func.__name__}" if prefix else getattr(func, "__name__", repr(func))


# ---- running rlvr on the sentinel in this process -----------------------------------------------------
def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


# one port for the session: the first run starts a process group that stays (DeepSpeed keeps its groups)
WORLD_OF_ONE = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": _free_port()}


def on_sentinel(monkeypatch, device: str = "cpu:0") -> None:
    """RLVR_DEVICE=`device` in a world of one rank, for one test (pytest's monkeypatch undoes it after):
    no later subprocess inherits this process's MASTER_PORT, and no later test the F.linear that a
    DeepSpeed ZeRO-3 engine puts in place of torch's for good."""
    monkeypatch.setenv("RLVR_DEVICE", device)
    for key, value in WORLD_OF_ONE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(nn.functional, "linear", nn.functional.linear)
