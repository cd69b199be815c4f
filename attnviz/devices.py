"""Which devices this machine has, which to use, and falling back to the CPU when a GPU fails."""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from .errors import DeviceUnavailable

log = logging.getLogger(__name__)


def available_devices() -> list[str]:
    """Devices torch can use here, best last-resort first: ``["cpu", "cuda:0", ..., "mps"]``."""
    devices = ["cpu"]
    try:
        if torch.cuda.is_available():
            devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not take the app down
        log.warning("CUDA query failed; using the CPU", exc_info=True)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def best_device() -> str:
    """The first CUDA GPU if there is one, else Apple's MPS, else the CPU."""
    devices = available_devices()
    for prefix in ("cuda", "mps"):
        for d in devices:
            if d.startswith(prefix):
                return d
    return "cpu"


def device_label(name: str) -> str:
    """A human label: ``cuda:0`` -> ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if name.startswith("cuda"):
        try:
            return f"{name} ({torch.cuda.get_device_name(torch.device(name))})"
        except Exception:
            return name
    return {"cpu": "cpu (processor)", "mps": "mps (Apple GPU)"}.get(name, name)


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> the best device; a name this machine lacks -> :class:`DeviceUnavailable`."""
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "" or name == "auto":
        return torch.device(best_device())
    name = str(name).strip().lower()
    if name == "cuda":
        name = "cuda:0"
    devices = available_devices()
    if name not in devices:
        raise DeviceUnavailable(f"Device {name!r} is not available here; choose one of: {', '.join(devices)}.")
    return torch.device(name)


#: lower-case fragments of torch's messages for a GPU that ran out of memory, failed or disappeared
_DEVICE_FAILURES = ("out of memory", "cuda error", "cuda driver", "cuda-capable device", "nvidia driver", "cublas",
                    "cudnn", "device-side", "no cuda gpus", "mps backend")


def is_device_failure(err: BaseException) -> bool:
    """GPU out of memory, or a GPU that vanished / errored: worth retrying on the CPU."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    accelerator_error = getattr(torch, "AcceleratorError", None)  # torch >= 2.8 raises it for CUDA errors
    if accelerator_error is not None and isinstance(err, accelerator_error):
        return True
    if isinstance(err, RuntimeError):
        msg = str(err).lower()
        return any(s in msg for s in _DEVICE_FAILURES)
    return False


def run_with_fallback(fn: Callable[..., Any], device: str | torch.device | None, *args, **kwargs) -> tuple[Any, str, str | None]:
    """Call ``fn(device, *args, **kwargs)``; if the GPU runs out of memory or fails, retry on the CPU.

    Returns ``(result, used_device, warning)``; ``warning`` is a sentence for the user or ``None``.
    """
    dev = resolve_device(device)
    try:
        return fn(dev, *args, **kwargs), str(dev), None
    except Exception as err:
        if dev.type == "cpu" or not is_device_failure(err):
            raise
        log.warning("device %s failed (%s); retrying on the CPU", dev, err)
        if dev.type == "cuda":
            try:
                torch.cuda.empty_cache()
            except Exception:
                pass
        warning = (f"The {dev.type.upper()} device ran out of memory or failed ({type(err).__name__}); "
                   "this result was computed on the CPU instead.")
        return fn(torch.device("cpu"), *args, **kwargs), "cpu", warning
