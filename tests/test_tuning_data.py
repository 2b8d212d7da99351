"""Dataset checks: every bad line reported by number and reason; assistant-only labels; seeded split."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from engine.prompting.codec import TextCodec
from engine.loading.demo.chat import demo_chat_model
from engine.prompting.mistral import encode_chat
from tuning.dataset import IGNORE_INDEX, DatasetError, Example, PadCollator, load_dataset, split, tokenize

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요!"}]}


@pytest.fixture(scope="module")
def codec():
    folder = demo_chat_model("tiny")
    return TextCodec.load(folder, AutoTokenizer.from_pretrained(str(folder)))


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l, ensure_ascii=False)) + "\n"
                            for l in lines), encoding="utf-8")
    return path


def test_every_bad_line_is_reported_with_its_number_and_reason(tmp_path, codec):
    long_text = "토큰 " * 400
    lines = [
        GOOD,                                                                    # 1 good
        "{not json",                                                             # 2
        ["a", "list"],                                                           # 3
        {"conversation": []},                                                    # 4
        {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]},            # 5
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "   "}]},     # 6
        {"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "yo"}]},      # 7
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"},
                      {"role": "user", "content": "more?"}]},                                          # 8
        {"messages": [{"role": "user", "content": long_text}, {"role": "assistant", "content": "ok"}]}, # 9
        {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"},
                      {"role": "assistant", "content": "b"}]},                                         # 10
        "",                                                                      # 11 blank: skipped
        {"messages": [{"role": "system", "content": "Be brief."}] + GOOD["messages"]},                 # 12 good
    ]
    report = load_dataset(write_lines(tmp_path / "d.jsonl", lines), codec, max_length=256)
    reasons = {p.line: p.reason for p in report.problems}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert "not valid JSON" in reasons[2]
    assert "JSON object" in reasons[3]
    assert "no \"messages\" list" in reasons[4]
    assert "unknown role 'bot'" in reasons[5]
    assert "empty content" in reasons[6]
    assert "out of order" in reasons[7]
    assert "last message must be the assistant" in reasons[8]
    assert "longer than max_length 256" in reasons[9]
    assert "system" in reasons[10] and "out of order" in reasons[10]
    assert [e.line for e in report.examples] == [1, 12]
    text = report.text()
    assert all(f"line {n}:" in text for n in reasons)
    with pytest.raises(DatasetError) as err:
        report.raise_if_bad()
    assert "line 9:" in str(err.value)


def test_labels_cover_only_assistant_tokens(codec):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello there"}, {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "잘 가요"}]
    ids, labels = tokenize(codec, msgs)
    expected_ids, mask = encode_chat(codec, msgs, with_assistant_mask=True)
    assert ids == expected_ids
    kept = [t for t, l in zip(ids, labels) if l != IGNORE_INDEX]
    replies = codec.encode("Hello there") + [codec.eos] + codec.encode("잘 가요") + [codec.eos]
    assert kept == replies
    assert labels[0] == IGNORE_INDEX and ids[0] == codec.bos


def test_split_is_seeded_and_disjoint():
    examples = [Example(i, [i], [i]) for i in range(1, 41)]
    a_train, a_eval = split(examples, 0.1, seed=7)
    b_train, b_eval = split(examples, 0.1, seed=7)
    c_train, c_eval = split(examples, 0.1, seed=8)
    assert [e.line for e in a_eval] == [e.line for e in b_eval] and len(a_eval) == 4
    assert [e.line for e in a_eval] != [e.line for e in c_eval]
    assert {e.line for e in a_train} | {e.line for e in a_eval} == set(range(1, 41))
    assert not {e.line for e in a_train} & {e.line for e in a_eval}
    assert split(examples[:3], 0.0, seed=1)[1] == []


def test_collator_pads_labels_with_ignore_index():
    batch = PadCollator(pad_id=2)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                                   {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_sample_dataset_is_valid_and_bilingual(codec):
    report = load_dataset(ROOT / "tuning" / "data" / "sample.jsonl", codec, max_length=512)
    assert report.ok and len(report.examples) >= 24, report.text()
    text = (ROOT / "tuning" / "data" / "sample.jsonl").read_text(encoding="utf-8")
    assert any("\uac00" <= ch <= "\ud7a3" for ch in text) and "the" in text


def test_validate_cli_reports_bad_lines_and_fails(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [GOOD, "nope", {"messages": [{"role": "user", "content": "x"}]}])
    out = subprocess.run([sys.executable, "-m", "tuning.validate", str(path)], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "line 2: not valid JSON" in out.stdout and "line 3:" in out.stdout and "1 good" in out.stdout
