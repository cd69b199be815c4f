import pytest
import torch

import attnviz.devices as devices
from attnviz.errors import DeviceUnavailable


def test_cpu_always_listed_and_auto_picks_best():
    assert devices.available_devices()[0] == "cpu"
    assert str(devices.resolve_device("auto")) == devices.best_device()
    assert str(devices.resolve_device(None)) == devices.best_device()
    assert devices.resolve_device("cpu").type == "cpu"


def test_best_device_prefers_cuda(monkeypatch):
    monkeypatch.setattr(devices, "available_devices", lambda: ["cpu", "cuda:0", "cuda:1"])
    assert devices.best_device() == "cuda:0"
    assert str(devices.resolve_device("cuda")) == "cuda:0"


def test_unknown_device_is_a_typed_error():
    with pytest.raises(DeviceUnavailable, match="cpu"):
        devices.resolve_device("cuda:7")
    with pytest.raises(DeviceUnavailable):
        devices.resolve_device("tpu")


def test_cuda_out_of_memory_falls_back_to_cpu_with_warning(monkeypatch):
    monkeypatch.setattr(devices, "available_devices", lambda: ["cpu", "cuda:0"])
    calls = []

    def work(device, x):
        calls.append(device.type)
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return x * 2

    result, used, warning = devices.run_with_fallback(work, "cuda:0", torch.ones(2))
    assert calls == ["cuda", "cpu"] and used == "cpu"
    assert torch.equal(result, torch.full((2,), 2.0))
    assert "CPU" in warning and "memory" in warning


def test_vanished_gpu_falls_back_but_real_bugs_do_not(monkeypatch):
    monkeypatch.setattr(devices, "available_devices", lambda: ["cpu", "cuda:0"])

    def lost(device):
        if device.type == "cuda":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return "ok"

    assert devices.run_with_fallback(lost, "cuda:0")[:2] == ("ok", "cpu")

    def bug(device):
        raise ValueError("a real bug")

    with pytest.raises(ValueError):
        devices.run_with_fallback(bug, "cuda:0")


def test_cpu_run_has_no_warning():
    assert devices.run_with_fallback(lambda d: d.type, "cpu") == ("cpu", "cpu", None)
