"""Drop one misleading bitsandbytes warning: on CPUs with AVX512-BF16 it logs at import that it could not load
a gemm kernel from the `kernels` package. We never install `kernels` (it fetches code from a hub), and
bitsandbytes then uses its own CPU kernel, so the line (seen on every start, issue 24) only alarms users."""
from __future__ import annotations

import logging

BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
HUB_KERNEL_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"


class _HubKernelNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(HUB_KERNEL_NOTICE)


def hush_hub_kernel_notice() -> None:
    """Install the filter on bitsandbytes' CPU logger (once; call before bitsandbytes is imported)."""
    logger = logging.getLogger(BNB_CPU_LOGGER)
    if not any(isinstance(f, _HubKernelNotice) for f in logger.filters):
        logger.addFilter(_HubKernelNotice())
