"""Real Whisper base offline, judged by what it hears: word error rate (English) and character error rate
(Korean) on espeak-ng speech through the app's own path (`SpeechToText.load(demo=True)` -> FasterWhisper:
load_audio, silence and VAD checks, language detection limited to ko/en, CTranslate2), per condition
(format, sample rate, speed, noise), language detection accuracy, a long-form clip, and the real-time factor
of the runtime settings side by side on the same long clip.

Clips come from tests/media_fixtures.py (the tests hold these rates with a margin). No hub, no network.

`SPEECH_LANGS=ko python -m bench speech_real` measures one language only (about a third of the 45 minutes) and
replaces only that language's rows of the previous section; the runtime speed table (English) is kept as it was.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

# (label, espeak_clip options) for the short sentences of each language
CONDITIONS = (
    ("WAV 22.05 kHz (espeak-ng as written)", {}),
    ("WAV 8 kHz (sox rate)", {"rate": 8000}),
    ("WAV 44.1 kHz (sox rate)", {"rate": 44100}),
    ("MP3 16 kHz (libsndfile)", {"rate": 16000, "fmt": "mp3"}),
    ("WebM/Opus 48 kHz (PyAV libopus)", {"fmt": "webm"}),
    ("1.25x faster (sox tempo)", {"tempo": 1.25}),
    ("white noise vol 0.05 (sox synth, -m)", {"noise": 0.05}),
)


LANGUAGES = ("en", "ko")


def _languages() -> tuple[str, ...]:
    """SPEECH_LANGS ("ko", "en" or "en,ko"): which languages' rows this run measures."""
    asked = tuple(code.strip() for code in os.environ.get("SPEECH_LANGS", ",".join(LANGUAGES)).split(",")
                  if code.strip())
    unknown = set(asked) - set(LANGUAGES)
    if unknown or not asked:
        raise SystemExit(f"SPEECH_LANGS must name some of {', '.join(LANGUAGES)}, not {sorted(unknown) or asked}")
    return asked


def _rates(stt, folder: Path, languages: tuple[str, ...] = LANGUAGES) -> tuple[list[dict], list[dict]]:
    from tests.media_fixtures import (EN_LONG, EN_SHORT, KO_LONG, KO_SHORT, LONG_WPM, error_rate,
                                      espeak_clip)

    rows = []
    for lang, sentences in (("en", EN_SHORT), ("ko", KO_SHORT)):
        if lang not in languages:
            continue
        for c, (label, options) in enumerate(CONDITIONS):
            rates, right, audio, compute = [], 0, 0.0, 0.0
            for i, text in enumerate(sentences):
                clip = espeak_clip(folder, f"{lang}{i}-c{c}", text, lang, **options)
                tr = stt.transcribe(clip)
                rates.append(error_rate(text, tr.text, lang))
                right += tr.language == lang
                audio, compute = audio + tr.seconds_audio, compute + tr.seconds_compute
            rows.append({"lang": lang, "condition": label, "rate": statistics.mean(rates), "worst": max(rates),
                         "detected": f"{right}/{len(sentences)}", "rtf": compute / audio})
    # Korean with espeak-ng's default voice (not the Klatt variant the rows above use)
    rates, right = [], 0
    for i, text in enumerate(KO_SHORT if "ko" in languages else ()):
        clip = espeak_clip(folder, f"ko-default{i}", text, "ko", voice="ko")
        tr = stt.transcribe(clip)
        rates.append(error_rate(text, tr.text, "ko"))
        right += tr.language == "ko"
    if rates:
        rows.append({"lang": "ko", "condition": "WAV 22.05 kHz, espeak-ng's default Korean voice", "rate":
                     statistics.mean(rates), "worst": max(rates), "detected": f"{right}/{len(KO_SHORT)}",
                     "rtf": 0.0})
    long_rows = []
    for lang, text in (("en", EN_LONG), ("ko", KO_LONG)):
        if lang not in languages:
            continue
        clip = espeak_clip(folder, f"{lang}-long", text, lang, wpm=LONG_WPM)
        tr = stt.transcribe(clip)
        long_rows.append({"lang": lang, "audio_s": tr.seconds_audio, "rate": error_rate(text, tr.text, lang),
                          "detected": tr.language, "segments": tr.chunks, "rtf": tr.real_time_factor,
                          "tail": tr.text[-60:]})
    return rows, long_rows


def _speed(folder: Path) -> list[dict]:
    """The same long English clip, language given, through each runtime setting; best of 2 after a warm-up."""
    from engine.media.whisper_ct2 import CPU_COMPUTE, FasterWhisper
    from tests.media_fixtures import EN_LONG, LONG_WPM, error_rate, espeak_clip

    clip = espeak_clip(folder, "en-long", EN_LONG, "en", wpm=LONG_WPM)
    out = []
    for label, compute, beam in (("CTranslate2 float32, greedy (the app's setting)", "float32", 1),
                                 ("CTranslate2 int8, greedy", "int8", 1),
                                 ("CTranslate2 int8, beam 5", "int8", 5)):
        stt = FasterWhisper.load(beam_size=beam)
        if compute != CPU_COMPUTE:
            from faster_whisper import WhisperModel

            stt.model = WhisperModel(stt.report.folder, device="cpu", compute_type=compute, cpu_threads=2,
                                     local_files_only=True)
        stt.transcribe(clip, "en")
        runs = [stt.transcribe(clip, "en") for _ in range(2)]
        best = min(runs, key=lambda r: r.seconds_compute)
        out.append({"runtime": label, "audio_s": best.seconds_audio, "compute_s": best.seconds_compute,
                    "rtf": best.real_time_factor, "wer": error_rate(EN_LONG, best.text, "en")})
        stt.close()
    return out


def _tables(lines: list[str]) -> list[int]:
    """For each line, the number of the Markdown table it belongs to (-1 outside tables)."""
    out, table, inside = [], -1, False
    for line in lines:
        if line.startswith("|") and not inside:
            table += 1
        inside = line.startswith("|")
        out.append(table if inside else -1)
    return out


def _merged(new: str, languages: tuple[str, ...]) -> str:
    """The previous section with only `languages`' rows (and the notes under the tables) taken from `new`: a
    one-language run leaves the other language's rows and the speed table as they were measured."""
    from bench.__main__ import previous_sections

    old = previous_sections().get("speech_real", "")
    if not old:
        return new
    old_lines = old.rstrip().splitlines()
    new_lines = new.splitlines()
    fresh: dict[tuple[int, str], list[str]] = {}
    for table, line in zip(_tables(new_lines), new_lines):
        if table >= 0 and line[2:4] in languages:
            fresh.setdefault((table, line[2:4]), []).append(line)
    out: list[str] = []
    for table, line in zip(_tables(old_lines), old_lines):
        key = (table, line[2:4])
        if table >= 0 and line[2:4] in languages:
            if fresh.get(key):
                out.append(fresh[key].pop(0))
            continue
        out.append(line)
    return "\n".join(out + ["", f"_Rows of {', '.join(languages)} re-measured alone (`SPEECH_LANGS="
                                 f"{','.join(languages)}`); the other rows are from the run stamped above._"])


def run() -> str:
    from config import EngineConfig
    from engine.media.speech import SpeechToText

    languages = _languages()
    started = time.perf_counter()
    stt = SpeechToText.load(EngineConfig(), demo=True)
    load_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows, long_rows = _rates(stt, folder, languages)
        speed = _speed(folder) if "en" in languages else []
    lines = [
        "## Real speech offline: Whisper base judged by what it hears",
        "",
        f"`python -m bench speech_real`. Model: {stt.report.summary()} (load {load_s:.1f} s, including joining "
        "the two package parts the first time). Clips: espeak-ng speech (English `en-us`; Korean `ko+klatt`), "
        "changed with sox and encoded as named; each transcribed through the app's path with language detection "
        "limited to ko/en. Rate: word error rate for English, character error rate (spaces dropped) for Korean, "
        "mean over the 4 short sentences of tests/media_fixtures.py (worst in brackets).",
        "",
        "| language | clip | error rate (worst) | language detected | RTF |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rtf = f"{r['rtf']:.2f}" if r["rtf"] else "-"
        lines.append(f"| {r['lang']} | {r['condition']} | {r['rate']:.2f} ({r['worst']:.2f}) | {r['detected']} | "
                     f"{rtf} |")
    lines += ["", "Long-form (one clip each, language detected; faster-whisper follows the timestamps from "
              "window to window, so nothing is cut at 30 s):", "",
              "| language | audio | error rate | detected | segments | RTF | last words heard |",
              "|---|---|---|---|---|---|---|"]
    for r in long_rows:
        lines.append(f"| {r['lang']} | {r['audio_s']:.1f} s | {r['rate']:.2f} | {r['detected']} | {r['segments']} | "
                     f"{r['rtf']:.2f} | {r['tail'].replace('|', '/')} |")
    lines += ["", "Real-time factor (seconds of compute per second of audio; lower is faster) of the runtime "
              "settings side by side, same long English clip, language given, best of 2 after a warm-up, "
              "2 CPU threads:", "", "| runtime | audio | compute | RTF | WER |", "|---|---|---|---|---|"]
    for r in speed:
        lines.append(f"| {r['runtime']} | {r['audio_s']:.1f} s | {r['compute_s']:.1f} s | {r['rtf']:.2f} | "
                     f"{r['wer']:.2f} |")
    lines += ["", "RTF of a short clip is high because every transcription runs at least one full 30 s window "
              "(and one more to detect the language when none is given), however short the audio; the machine "
              "was shared with other jobs (load average above 10 on 2 cores) during this run."]
    lines += ["", "transformers' WhisperForConditionalGeneration on the same weights (converted back from "
              "CTranslate2's format) is measured beside faster-whisper in its own section (`python -m bench "
              "whisper_runtimes`), not in this table."]
    return "\n".join(lines) if languages == LANGUAGES else _merged("\n".join(lines), languages)
