"""The quality cost of a precision rung: perplexity of a loaded model on a fixed text, and the stored table.

`make bench` (bench/bench_quality.py) measures every rung the machine runs and writes the rows to a JSON
file; the Models tab reads the rows for the loaded model, so a user picks a rung by its measured cost
("4-bit: -70 % memory, +17 % perplexity") rather than by a rule of thumb.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from config.files import atomic_write_text


@dataclass(frozen=True)
class QualityRow:
    rung: str                 # cpu-float32 | cpu-bfloat16 | fp16 | 8bit | 4bit
    perplexity: float
    weight_bytes: int         # parameters and buffers as stored at this rung
    tokens_per_second: float  # greedy, one stream, plain generate
    tokens: int               # tokens of the text scored


def perplexity(model: Any, tokenizer: Any, text: str, *, window: int = 1024) -> tuple[float, int]:
    """exp(mean next-token loss) over `text`, in windows of `window` tokens; (perplexity, tokens scored)."""
    ids = tokenizer(text, add_special_tokens=True, return_tensors="pt")["input_ids"][0]
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start:start + window + 1].unsqueeze(0).to(device)
            if chunk.shape[1] < 2:
                break
            logits = model(input_ids=chunk).logits.float()
            loss = torch.nn.functional.cross_entropy(logits[0, :-1], chunk[0, 1:], reduction="sum")
            total, count = total + loss.item(), count + chunk.shape[1] - 1
    return math.exp(total / count), count


def read_quality(path: str | Path, model_id: str) -> list[QualityRow]:
    """The stored rows for `model_id`; [] when none were measured (or the file is missing or unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return [QualityRow(**row) for row in data.get(model_id, {}).get("rows", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return []


def write_quality(path: str | Path, model_id: str, rows: list[QualityRow], text_name: str) -> None:
    """Replace `model_id`'s rows in the JSON file, atomically (temp file, fsync, rename)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data[model_id] = {"text": text_name, "rows": [asdict(r) for r in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def relative_costs(rows: list[QualityRow]) -> list[tuple[QualityRow, float, float]]:
    """Each row with its memory and perplexity change against the first (full-precision) row, in percent."""
    if not rows:
        return []
    base = rows[0]
    return [(r, 100.0 * (r.weight_bytes / base.weight_bytes - 1), 100.0 * (r.perplexity / base.perplexity - 1))
            for r in rows]
