"""Hand a freshly zeroed CPU tensor's pages back to the kernel, so it takes RAM as it is written.

transformers' continuous batching makes its paged KV cache with torch.zeros, which writes every page: on
the CPU the app's default cache (32 requests x 4096 tokens, 1 GiB on the bench model) was resident before
the first request. On Linux, anonymous pages handed back with madvise(MADV_DONTNEED) read as zeros again,
so the tensor's contents do not change; pages come back one by one as the cache is written. Only for a
tensor that holds nothing but zeros: anything else would read back as zeros.
"""
from __future__ import annotations

import ctypes
import mmap
import sys

import torch


def give_back_zero_pages(tensor: torch.Tensor) -> int:
    """Bytes handed back: the whole pages inside an all-zero CPU tensor; 0 off Linux, off the CPU, or if the
    kernel refused."""
    if tensor.device.type != "cpu" or not sys.platform.startswith("linux"):
        return 0
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    page = mmap.PAGESIZE
    first, last = -(-start // page) * page, end // page * page   # pages wholly inside the tensor
    if last <= first:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return last - first if libc.madvise(first, last - first, mmap.MADV_DONTNEED) == 0 else 0
