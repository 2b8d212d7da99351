"""Check a chat JSONL file before training: every bad line with its number and reason.

    python -m tuning.validate FILE [--base demo:tiny | owner/model | folder] [--max-length 2048]

Without --base only the structure is checked; with it, lengths are counted with that model's
tokenizer (only the tokenizer is loaded). Exit status 0 when every line is good, 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from tuning.dataset import DatasetError, load_dataset


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuning.validate", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="JSONL file, one {\"messages\": [...]} per line")
    parser.add_argument("--base", default="", help="model whose tokenizer counts the tokens (optional)")
    parser.add_argument("--max-length", type=int, default=2048, help="longest conversation in tokens")
    args = parser.parse_args(argv)
    codec = None
    if args.base:
        from transformers import AutoTokenizer

        from engine.prompting.codec import TextCodec
        from engine.loading.sources import resolve_source
        from engine.errors import SourceError

        try:
            source = resolve_source(args.base)
        except SourceError as exc:
            print(exc, file=sys.stderr)
            return 2
        codec = TextCodec.load(source.folder, AutoTokenizer.from_pretrained(str(source.folder)))
    try:
        report = load_dataset(args.file, codec, args.max_length)
    except DatasetError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(report.text())
    if codec is not None and report.examples:
        n = [len(e.input_ids) for e in report.examples]
        print(f"tokens per conversation: min {min(n)}, max {max(n)}, total {sum(n)}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
