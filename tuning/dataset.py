"""Chat JSONL -> checked, tokenised examples with loss on assistant tokens only, split train/eval.

Every bad line is reported (number and reason) before any training starts, so a user fixes the
file once instead of once per crash. A line is one JSON object {"messages": [{"role", "content"}]}:
an optional system message first, then user/assistant alternating, ending with an assistant reply.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from engine.prompting.codec import TextCodec
from engine.prompting.mistral import encode_chat
from engine.errors import PromptError

IGNORE_INDEX = -100      # label of tokens that carry no loss (prompt, system, user turns)
ROLES = ("system", "user", "assistant")


class DatasetError(ValueError):
    """The dataset cannot be trained on; the message lists every bad line."""


@dataclass(frozen=True)
class LineProblem:
    line: int           # 1-based line number in the file
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class Example:
    line: int
    input_ids: list[int]
    labels: list[int]


@dataclass
class DatasetReport:
    path: str
    sha256: str
    lines: int = 0                      # non-blank lines seen
    examples: list[Example] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.examples)

    def text(self) -> str:
        head = f"{self.path}: {len(self.examples)} good conversation(s), {len(self.problems)} bad line(s)"
        if not self.lines:
            head += " (the file has no conversations)"
        return "\n".join([head] + [f"  {p}" for p in self.problems])

    def raise_if_bad(self) -> None:
        if not self.ok:
            raise DatasetError(self.text())


def _text_of(content: Any) -> str | None:
    """Message text: a string, or OpenAI-style text parts joined; None when it is not text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    return None


def check_messages(record: Any) -> tuple[list[dict], list[str]]:
    """(clean messages, reasons they are wrong); reasons is empty for a trainable conversation."""
    if not isinstance(record, dict):
        return [], [f"expected a JSON object with a \"messages\" list, got {type(record).__name__}"]
    messages = record.get("messages")
    if not isinstance(messages, list):
        return [], ["no \"messages\" list"]
    if not messages:
        return [], ["\"messages\" is empty"]
    reasons, clean = [], []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict):
            reasons.append(f"message {i} is not an object")
            continue
        role, text = m.get("role"), _text_of(m.get("content"))
        if role not in ROLES:
            reasons.append(f"message {i}: unknown role {role!r} (use {', '.join(ROLES)})")
            continue
        if text is None:
            reasons.append(f"message {i} ({role}): content must be text")
            continue
        if not text.strip():
            reasons.append(f"message {i} ({role}): empty content")
        clean.append({"role": role, "content": text})
    if reasons:
        return clean, reasons
    offset = 1 if clean[0]["role"] == "system" else 0
    turns = clean[offset:]
    for j, m in enumerate(turns):
        expected = "user" if j % 2 == 0 else "assistant"
        if m["role"] != expected:
            where = "a system message may only come first" if m["role"] == "system" else f"expected {expected}"
            reasons.append(f"roles out of order: message {j + offset + 1} is {m['role']} ({where}); "
                           "use an optional system message, then user/assistant alternating")
            return clean, reasons
    if not turns:
        reasons.append("no user/assistant turns")
    elif turns[-1]["role"] != "assistant":
        reasons.append("roles out of order: the last message must be the assistant reply to learn")
    return clean, reasons


def tokenize(codec: TextCodec, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) in the inference prompt format; labels are IGNORE_INDEX off assistant tokens."""
    ids, mask = encode_chat(codec, messages, with_assistant_mask=True)
    return ids, [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]


def load_dataset(path: str | Path, codec: TextCodec | None, max_length: int) -> DatasetReport:
    """Read and check every line; tokenise the good ones when a codec is given (lengths need it)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc.strerror or exc}") from None
    report = DatasetReport(str(path), hashlib.sha256(raw).hexdigest())
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        report.lines += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            report.problems.append(LineProblem(number, f"not valid JSON (column {exc.colno}: {exc.msg})"))
            continue
        messages, reasons = check_messages(record)
        if reasons:
            report.problems.append(LineProblem(number, "; ".join(reasons)))
            continue
        if codec is None:
            report.examples.append(Example(number, [], []))
            continue
        try:
            ids, labels = tokenize(codec, messages)
        except PromptError as exc:   # our checks should have caught it; never crash on a line
            report.problems.append(LineProblem(number, str(exc)))
            continue
        if len(ids) > max_length:
            report.problems.append(LineProblem(number, f"{len(ids)} tokens, longer than max_length {max_length}: "
                                               "shorten or split the conversation, or raise max_length"))
            continue
        report.examples.append(Example(number, ids, labels))
    return report


def split(examples: Sequence[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministic (seeded) split; at least one eval example when eval_fraction > 0 and there are two."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = round(len(order) * eval_fraction)
    if eval_fraction > 0 and len(order) >= 2:
        n_eval = max(1, n_eval)
    n_eval = min(n_eval, len(order) - 1)
    eval_idx = set(order[:n_eval])
    train = [e for i, e in enumerate(examples) if i not in eval_idx]
    held = [e for i, e in enumerate(examples) if i in eval_idx]
    return train, held


class ChatDataset:
    """torch-style dataset of tokenised examples (a plain list is all the Trainer needs)."""

    def __init__(self, examples: Sequence[Example]):
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels}


@dataclass(frozen=True)
class PadCollator:
    """Right-pads a batch: pad id in input_ids, IGNORE_INDEX in labels, 0 in attention_mask."""
    pad_id: int

    def __call__(self, batch: Sequence[dict]) -> dict:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.tensor(b["input_ids"])
            labels[row, :n] = torch.tensor(b["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
