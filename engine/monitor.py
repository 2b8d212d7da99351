"""GPU stats through NVML (nvidia-ml-py), CPU and RAM through psutil. No GPU is a normal answer.

NVML numbers cards its own way (PCI order), torch follows CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER:
NVML row 0 is often not `cuda:0`. Rows are matched to torch devices by PCI bus id, and the free memory
the loader plans with comes from torch.cuda.mem_get_info on the very device it loads on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import psutil
import torch


@dataclass(frozen=True)
class GpuStats:
    name: str
    memory_used: int
    memory_total: int
    memory_free: int
    utilization: int | None       # percent
    power_watts: float | None
    temperature_c: int | None
    pci_bus_id: str = ""          # "0000:01:00.0"
    torch_index: int | None = None  # the cuda:N this card is in this process, None if torch does not see it


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


def pci_key(domain: int, bus: int, device: int) -> str:
    """One spelling of a PCI address for NVML's busId ("00000000:01:00.0") and torch's properties."""
    return f"{domain:04x}:{bus:02x}:{device:02x}.0"


def parse_nvml_bus_id(bus_id: str | bytes) -> str:
    text = bus_id.decode() if isinstance(bus_id, bytes) else str(bus_id)
    domain, bus, rest = text.strip().lower().split(":")
    return pci_key(int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16))


def torch_devices_by_pci() -> dict[str, int]:
    """{PCI address: torch cuda index} for the cards this process sees."""
    if not torch.cuda.is_available():
        return {}
    out = {}
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out[pci_key(p.pci_domain_id, p.pci_bus_id, p.pci_device_id)] = i
    return out


def read_gpus() -> tuple[list[GpuStats], str]:
    """All GPUs NVML sees, or ([], reason). Never raises: a machine without a GPU is fine."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], "no GPU" if "NotFound" in type(exc).__name__ or "Driver" in type(exc).__name__ else f"no GPU ({exc})"
    try:
        gpus = []
        by_pci = torch_devices_by_pci()
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = pynvml.nvmlDeviceGetName(h)
            pci = _optional(lambda: parse_nvml_bus_id(pynvml.nvmlDeviceGetPciInfo(h).busId)) or ""
            gpus.append(GpuStats(
                name=name.decode() if isinstance(name, bytes) else str(name),
                memory_used=int(mem.used), memory_total=int(mem.total), memory_free=int(mem.free),
                utilization=_optional(lambda: int(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)),
                power_watts=_optional(lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                temperature_c=_optional(lambda: int(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU))),
                pci_bus_id=pci, torch_index=by_pci.get(pci),
            ))
        return gpus, "" if gpus else "no GPU"
    finally:
        _optional(pynvml.nvmlShutdown)


def read_system() -> SystemStats:
    gpus, note = read_gpus()
    vm = psutil.virtual_memory()
    return SystemStats(gpus=gpus, gpu_note=note, ram_used=int(vm.total - vm.available), ram_total=int(vm.total),
                       ram_available=int(vm.available), cpu_percent=psutil.cpu_percent(interval=None))


def free_gpu_bytes(device: int = 0) -> int | None:
    """Free memory of torch's cuda:`device` (torch.cuda.mem_get_info, so the same card torch loads on),
    or None without a GPU."""
    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)
