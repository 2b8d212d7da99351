"""Whether a quantized rung may join the continuous batch: the measured decision, read from a file (issue 23).

bench/quantized_batching.py compares what batching does to a rung's answers with what its quantization does
and writes the figures and the decision per rung ("8-bit", "4-bit") to batch_criterion.json beside this
module. Missing or unreadable, quantized models take turns on the queue, as before it was measured. The
file is parsed once per change (keyed by its path, size and mtime), not once per request or table row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CRITERION_FILE = Path(__file__).with_name("batch_criterion.json")
RUNG_BITS = {"8bit": "8-bit", "4bit": "4-bit", "4bit-offload": "4-bit"}   # load rung -> the file's rung key


@dataclass(frozen=True)
class BatchDecision:
    """`batches`: True (shares the batch), False (measured to change answers), None (not measured).
    `reason`: why its requests take turns, in words a user understands; None when it batches."""

    batches: bool | None
    reason: str | None = None


@lru_cache(maxsize=8)
def _read(path: str, _size: int, _mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _measured(path: Path) -> dict:
    st = path.stat()
    return _read(str(path), st.st_size, st.st_mtime_ns)


def measured_decision(bits: str | None, method: str = "bitsandbytes", path: Path | None = None) -> BatchDecision:
    """The decision for a model quantized at `bits` ("8-bit" | "4-bit"; None: unknown bits or another method)."""
    path = Path(path or CRITERION_FILE)
    what = f"the model is quantized {bits} ({method})" if bits else f"the model is quantized ({method})"
    try:
        measured = _measured(path)
        row = measured["rungs"][bits]
        if row["batches"] is True:
            return BatchDecision(True)
        moved, within = float(row["kl_batched"]) / float(row["kl_quant"]), float(row["greedy_within"])
        share, least = float(measured.get("kl_share", 0.1)), float(measured.get("greedy_share", 0.99))
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError, AttributeError):
        return BatchDecision(None, (
            f"{what}: whether sharing the batch changes its answers has not been measured ({path.name} is missing "
            f"or has no {bits or method} entry; `python -m bench.quantized_batching` measures it), so requests "
            "take turns"))
    return BatchDecision(False, (
        f"{what}, and {bits} answers change when several people ask at once (measured: answering together "
        f"moves its next-word probabilities {moved:.0%} as far as the quantization itself does, and "
        f"{within:.1%} of the words of replies written together are the ones it picks alone; it may share "
        f"the batch below {share:.0%} and from {least:.0%}), so requests take turns"))


def rung_batches(rung: str, path: Path | None = None) -> bool | None:
    """Whether a model at this load rung ("fp16", "8bit", "4bit", "cpu-bfloat16", ...) shares the continuous
    batch: unquantized rungs do; a bitsandbytes rung as measured (None: not measured)."""
    bits = RUNG_BITS.get(rung)
    return True if bits is None else measured_decision(bits, path=path).batches
