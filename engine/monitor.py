"""GPU stats through NVML (nvidia-ml-py), CPU and RAM through psutil. No GPU is a normal answer."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import psutil


@dataclass(frozen=True)
class GpuStats:
    name: str
    memory_used: int
    memory_total: int
    memory_free: int
    utilization: int | None       # percent
    power_watts: float | None
    temperature_c: int | None


@dataclass(frozen=True)
class SystemStats:
    gpus: list[GpuStats]
    gpu_note: str                 # "" when GPUs were read, else why not ("no GPU")
    ram_used: int
    ram_total: int
    ram_available: int
    cpu_percent: float

    def to_dict(self) -> dict:
        return asdict(self)


def _optional(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a sensor a card lacks (power on some laptops) is simply absent
        return None


def read_gpus() -> tuple[list[GpuStats], str]:
    """All GPUs NVML sees, or ([], reason). Never raises: a machine without a GPU is fine."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], "no GPU" if "NotFound" in type(exc).__name__ or "Driver" in type(exc).__name__ else f"no GPU ({exc})"
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = pynvml.nvmlDeviceGetName(h)
            gpus.append(GpuStats(
                name=name.decode() if isinstance(name, bytes) else str(name),
                memory_used=int(mem.used), memory_total=int(mem.total), memory_free=int(mem.free),
                utilization=_optional(lambda: int(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)),
                power_watts=_optional(lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                temperature_c=_optional(lambda: int(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))),
            ))
        return gpus, "" if gpus else "no GPU"
    finally:
        _optional(pynvml.nvmlShutdown)


def read_system() -> SystemStats:
    gpus, note = read_gpus()
    vm = psutil.virtual_memory()
    return SystemStats(gpus=gpus, gpu_note=note, ram_used=int(vm.total - vm.available), ram_total=int(vm.total),
                       ram_available=int(vm.available), cpu_percent=psutil.cpu_percent(interval=None))


def free_gpu_bytes() -> int | None:
    """Free memory of GPU 0, or None without a GPU."""
    gpus, _ = read_gpus()
    return gpus[0].memory_free if gpus else None
