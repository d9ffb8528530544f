"""The device audit itself (tests/device_audit.py): each mistake a GPU would refuse is caught, each pattern
a GPU allows passes, and the tensors libraries make for themselves (transformers, DeepSpeed) raise
nothing. The tensors here are made in a tests/ file, which the audit counts as first-party code."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from tests.device_audit import DEVICE, DeviceAudit, DeviceMismatch, on_sentinel

DEV = torch.device("cpu", 0)
HERE = r"tests/test_device_audit\.py:\d+"


def made_here(op: str) -> str:
    return rf"{re.escape(op)} at {HERE} mixes device tensors with a host tensor made at {HERE}"


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


# ---- what a GPU refuses ------------------------------------------------------------------------
def test_a_factory_without_device_meets_a_model_output(llama):
    with DeviceAudit():
        logits = llama.to(DEV)(input_ids=torch.tensor([[1, 2, 3]], device=DEV)).logits
        bias = torch.zeros(logits.shape[-1])  # forgot device=
        with pytest.raises(DeviceMismatch, match=made_here("Tensor.add")):
            logits + bias


def test_an_explicit_host_device_meets_a_device_tensor():
    with DeviceAudit():
        x = torch.ones(3, device=DEV)
        with pytest.raises(DeviceMismatch, match=made_here("torch.cat")):
            torch.cat([x, torch.ones(2, device="cpu")])
        with pytest.raises(DeviceMismatch, match=made_here("Tensor.mul")):
            x * x.cpu()  # moved off by first-party code


def test_a_generator_of_the_other_device():
    with DeviceAudit():
        probs = torch.full((2, 4), 0.25, device=DEV)
        with pytest.raises(DeviceMismatch, match=rf"torch.multinomial at {HERE} samples device tensors "
                                                 r"with a host torch.Generator"):
            torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(0))
        on_device = torch.Generator(device=DEV).manual_seed(0)
        assert torch.multinomial(probs, 1, generator=on_device).shape == (2, 1)
        assert isinstance(on_device, torch.Generator) and isinstance(torch.default_generator, torch.Generator)
        with pytest.raises(DeviceMismatch, match="samples host tensors with a device torch.Generator"):
            torch.randperm(4, generator=on_device)
        torch.randperm(4, generator=torch.Generator(device="cpu"), device="cpu")  # all on the host: fine


def test_a_module_left_on_the_host(llama):
    with DeviceAudit():
        with pytest.raises(DeviceMismatch, match=rf"embedding at {HERE} .* a parameter never moved"):
            llama(input_ids=torch.tensor([[1, 2, 3]], device=DEV))  # loaded by transformers, never moved
        llama.to(DEV).to("cpu")  # moved off by first-party code (through transformers' own .to)
        with pytest.raises(DeviceMismatch, match=made_here("torch.nn.functional.embedding")):
            llama(input_ids=torch.tensor([[1, 2, 3]], device=DEV))
        head, x = nn.Linear(4, 2), torch.ones(3, 4, device=DEV)
        with pytest.raises(DeviceMismatch, match=made_here("torch.nn.functional.linear")):
            head(x)  # made here: its weights are host tensors made on the line above
        head.to(DEV).to("cpu")  # moved off by first-party code: host again
        with pytest.raises(DeviceMismatch, match=made_here("torch.nn.functional.linear")):
            head(x)
        assert head.to(DEV)(x).device == DEV


def test_host_tensors_read_by_device_indices_or_written_with_values_of_the_other_device():
    with DeviceAudit():
        host, idx = torch.zeros(4, device="cpu"), torch.tensor([0, 2], device=DEV)
        with pytest.raises(DeviceMismatch, match="indices should be either on cpu or on the same device"):
            host[idx]
        with pytest.raises(DeviceMismatch, match=made_here("Tensor.__setitem__")):
            torch.zeros(4, device=DEV)[torch.tensor([0, 2])] = torch.ones(2)  # index_put_ of host values
        with pytest.raises(DeviceMismatch, match="Tensor.index_put_"):
            host.index_put_((torch.tensor([0, 2]),), torch.ones(2, device=DEV))


def test_numpy_of_a_device_tensor():
    with DeviceAudit():
        x = torch.ones(2, device=DEV)
        with pytest.raises(DeviceMismatch, match=rf"Tensor.numpy of a device tensor at {HERE}"):
            x.numpy()
        with pytest.raises(DeviceMismatch, match="Tensor.__array__"):
            np.asarray(x)
        assert x.cpu().numpy().tolist() == [1.0, 1.0]


def test_a_device_tensor_sent_by_an_object_collective(monkeypatch):
    import torch.distributed as dist

    from rlvr import distributed as D

    on_sentinel(monkeypatch)
    D.init()
    with DeviceAudit():
        x = torch.ones(2, device=DEV)
        with pytest.raises(DeviceMismatch, match=rf"all_gather_object at {HERE} sends a device tensor"):
            D.all_gather_object({"values": [x]})  # rlvr's wrapper: no collective at one rank, still refused
        with pytest.raises(DeviceMismatch, match="broadcast_object_list"):
            dist.broadcast_object_list([(1, x)], src=0)
        assert D.all_gather_object(x.cpu())[0].tolist() == [1.0, 1.0]


def test_neither_a_thread_nor_an_except_exception_hides_a_mismatch():
    def forgetful(x):
        try:
            return x + torch.ones(2)
        except Exception:  # as the verifier pool does: a crashing verifier costs one sample
            return None

    with DeviceAudit():
        x = torch.ones(2, device=DEV)
        with ThreadPoolExecutor(1) as pool, pytest.raises(DeviceMismatch, match=made_here("Tensor.add")):
            pool.submit(forgetful, x).result()  # as rlvr's RL trainer scores: in a thread


# ---- what a GPU allows -------------------------------------------------------------------------
def test_host_scalars_indices_and_copies_with_device_tensors():
    with DeviceAudit() as audit:
        x = torch.arange(6.0, device=DEV)
        assert audit.kind(x * torch.tensor(2.0)) == DEVICE  # a 0-dim host tensor is a CPU scalar
        assert torch.where(x > 2, x, torch.tensor(0.0)).tolist() == [0, 0, 0, 3, 4, 5]
        idx, mask = torch.tensor([1, 3]), torch.tensor([True, False] * 3)
        assert x[idx].tolist() == [1, 3] and x[mask].tolist() == [0, 2, 4]
        x[idx] = torch.zeros(2, device=DEV)
        x.index_put_((idx,), torch.tensor(7.0))
        x[0:2] = torch.tensor([8.0, 9.0])  # a slice assignment is a copy, from anywhere
        host = torch.zeros(6, device="cpu")
        host[1:3] = x[:2]
        host[torch.tensor([4, 5], device=DEV)] = torch.tensor([4.0, 5.0])  # written: indices move to host
        host.copy_(x)
        assert audit.kind(host) != DEVICE and host.tolist() == [8, 9, 2, 7, 4, 5]
        assert x.sum().item() == 35 and x[int(torch.tensor(1, device=DEV))].item() == 9


def test_built_on_the_host_then_moved():
    with DeviceAudit() as audit:
        host = torch.tensor([[1, 2], [3, 4]], device="cpu")
        x = host.to(DEV)
        assert audit.kind(x) == DEVICE and x.device == DEV and host.device == torch.device("cpu")
        assert audit.kind(torch.zeros(2, device=x.device)) == DEVICE  # following x.device stays there
        assert audit.kind(nn.Parameter(x.float())) == DEVICE  # a parameter is where its data is
        assert x.tolist() == [[1, 2], [3, 4]]
        with pytest.raises(DeviceMismatch, match=made_here("Tensor.add")):
            x + host  # the original stays on the host, as on a GPU


def test_a_llama_forward_and_backward(llama):
    with DeviceAudit() as audit:
        model = llama.to(DEV)
        ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]], device=DEV)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids, use_cache=True)
        out.loss.backward()
        torch.optim.AdamW(model.parameters(), lr=1e-3).step()
        assert {audit.kind(p) for p in model.parameters()} == {DEVICE}
        assert audit.kind(out.logits) == DEVICE and audit.kind(model.lm_head.weight.grad) == DEVICE
        model.zero_grad()


@pytest.mark.parametrize("stage, moved", [(0, True), (2, True), (3, True), (0, False)])
def test_a_deepspeed_engine_step(stage, moved, tiny_model_dir, monkeypatch):
    import deepspeed
    from transformers import AutoModelForCausalLM

    from rlvr import distributed as D

    on_sentinel(monkeypatch)
    D.init()
    config = {"train_batch_size": 2, "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0,
              "zero_optimization": {"stage": stage}, "zero_allow_untested_optimizer": True,
              "steps_per_print": 10**9}
    with DeviceAudit() as audit:
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        model = model.to(DEV) if moved else model  # unmoved: DeepSpeed moves it, as on a GPU
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config,
                                          dist_init_required=False)
        ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]], device=DEV)
        for _ in range(2):
            loss = engine(input_ids=ids, labels=ids).loss
            engine.backward(loss)
            engine.step()
        assert audit.kind(loss) == DEVICE and torch.isfinite(loss).item()
