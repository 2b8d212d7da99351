"""Vision and speech on the tiny demo models: time to first token of an image question, and the
real-time factor of transcription (and of speech synthesis).

The models are tiny LLaVA-NeXT / Whisper / VITS with RANDOM weights: these figures measure our
pipeline (image checks, any-resolution preprocessing, resampling, 30 s chunking, feature
extraction, generation loop) on this CPU, not the quality or speed of the real 7B/small models.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPEATS = 5
VISION_NEW_TOKENS = 16
QUESTION = "What is in this picture? 이 사진에 무엇이 있나요?"


def _photo(size=(336, 336)):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _vision(dtype: str) -> dict:
    import io

    from config import EngineConfig
    from engine.serving.generation import GenerationParams
    from engine.media.vision import VisionEngine

    t0 = time.perf_counter()
    engine = VisionEngine.load(EngineConfig(cpu_dtype=dtype), demo=True)
    load_s = time.perf_counter() - t0
    buf = io.BytesIO()
    _photo().save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    params = GenerationParams(max_new_tokens=VISION_NEW_TOKENS, min_new_tokens=VISION_NEW_TOKENS, temperature=0.0)
    engine.ask(data, QUESTION, params).text()  # warm-up
    ttft, tps, prompt = [], [], 0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        stream = engine.ask(data, QUESTION, params)  # image checks + preprocessing count towards TTFT
        first = None
        for _piece in stream:
            first = first or time.perf_counter() - t0
        ttft.append(first)
        tps.append(stream.stats.tokens_per_second)
        prompt = stream.stats.prompt_tokens
    image_tokens = engine.prepare(data, QUESTION).image_tokens
    return {"dtype": dtype, "load_s": load_s, "ttft": statistics.median(ttft), "tps": statistics.median(tps),
            "prompt_tokens": prompt, "image_tokens": image_tokens}


def _espeak(path: Path, text: str, voice: str) -> Path:
    """Real synthetic speech: espeak-ng (Debian package) writes 22050 Hz mono 16-bit WAV."""
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


def _clips(tmp: Path) -> dict[str, bytes]:
    import io

    import numpy as np
    import soundfile as sf

    ko = _espeak(tmp / "ko.wav", "안녕하세요. 오늘은 날씨가 정말 좋네요. 같이 산책하러 갈까요?", "ko")
    en = _espeak(tmp / "en.wav", "Hello, how are you today? The weather is lovely, shall we go for a walk?", "en")
    speech, rate = sf.read(str(en), dtype="float32")
    long = np.concatenate([speech, np.zeros(rate // 2, np.float32)] * 12)  # ~60 s: several 30 s pieces
    buf = io.BytesIO()
    sf.write(buf, long, rate, format="WAV", subtype="PCM_16")
    return {"Korean, espeak-ng 22.05 kHz": ko.read_bytes(), "English, espeak-ng 22.05 kHz": en.read_bytes(),
            f"English x12, {len(long) / rate:.0f} s": buf.getvalue()}


def _speech() -> tuple[list[dict], list[dict]]:
    from config import EngineConfig
    from engine.media.speech import SpeechToText, Voice

    cfg = EngineConfig(demo_speech="tiny")   # the tiny random models; bench speech_real measures the real ones
    stt = SpeechToText.load(cfg, demo=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = _clips(Path(tmp))
        stt.transcribe(clips["English, espeak-ng 22.05 kHz"])  # warm-up
        for name, data in clips.items():
            runs = [stt.transcribe(data) for _ in range(3)]
            rows.append({"clip": name, "audio_s": runs[0].seconds_audio, "chunks": runs[0].chunks,
                         "compute_s": statistics.median(r.seconds_compute for r in runs),
                         "rtf": statistics.median(r.real_time_factor for r in runs)})
    tts_rows = []
    for lang, text in (("ko", "안녕하세요. 오늘은 날씨가 정말 좋네요. 같이 산책하러 갈까요?"),
                       ("en", "Hello, how are you today? The weather is lovely, shall we go for a walk?")):
        voice = Voice.load(cfg, lang, demo=True)
        voice.speak(text)  # warm-up (for Korean this also loads uroman's tables, about 2 s)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = voice.speak(text)
            runs.append((time.perf_counter() - t0, out.seconds))
        compute = statistics.median(r[0] for r in runs)
        audio = statistics.median(r[1] for r in runs)
        tts_rows.append({"lang": lang, "compute_s": compute, "audio_s": audio, "rtf": compute / audio})
    return rows, tts_rows


def run() -> str:
    load_before = os.getloadavg()[0]
    vision = [_vision(d) for d in ("bfloat16", "float32")]
    stt, tts = _speech()
    load_after = os.getloadavg()[0]
    lines = ["## Vision and speech (tiny models, this CPU)", "",
             "**Tiny models with random weights** (LLaVA-NeXT with a 2-layer CLIP tower and 2-layer Mistral, "
             "Whisper with d_model 64, MMS-style VITS with hidden 32), built offline by `engine/loading/demo/`. The "
             "figures time our own path (image checks, any-resolution preprocessing, resampling, 30 s "
             "chunking, feature extraction, the generation loop) on this CPU; they say nothing about the "
             "real 7B LLaVA or Whisper-small, which need a GPU measurement.", "",
             f"Image question: a 336x336 JPEG given as file bytes, greedy, {VISION_NEW_TOKENS} new tokens, median "
             f"of {REPEATS} runs after a warm-up; time to first token is measured from the call to "
             "`VisionEngine.ask` (image decode and checks included) to the first text piece.", "",
             "| dtype | image tokens | prompt tokens | time to first token ms | tokens/s | load s |",
             "|---|---|---|---|---|---|"]
    for v in vision:
        lines.append(f"| cpu-{v['dtype']} | {v['image_tokens']} | {v['prompt_tokens']} | {v['ttft'] * 1000:.0f} | "
                     f"{v['tps']:.1f} | {v['load_s']:.1f} |")
    lines += ["", "Transcription (`SpeechToText.transcribe`, fp32, default settings, median of 3 after a warm-up). "
              "Real-time factor = seconds of compute / seconds of audio (below 1 is faster than real time). "
              "Random weights never emit end-of-text, so every 30 s piece decodes the full 440-token limit: "
              "a worst case for the decoder.", "",
              "| clip | audio s | 30 s pieces | compute s | real-time factor |", "|---|---|---|---|---|"]
    for r in stt:
        lines.append(f"| {r['clip']} | {r['audio_s']:.1f} | {r['chunks']} | {r['compute_s']:.2f} | "
                     f"**{r['rtf']:.2f}** |")
    lines += ["", "Speech synthesis (`Voice.speak`, fp32, 3 sentences, median of 3 after a warm-up; random "
              "durations, so the audio length is arbitrary):", "",
              "| voice | audio s | compute s | real-time factor |", "|---|---|---|---|"]
    for r in tts:
        lines.append(f"| {r['lang']} (tiny VITS{', uroman' if r['lang'] == 'ko' else ''}) | {r['audio_s']:.1f} | "
                     f"{r['compute_s']:.2f} | **{r['rtf']:.2f}** |")
    lines += ["", f"1-minute load average on this {os.cpu_count()}-core machine: {load_before:.1f} before, "
              f"{load_after:.1f} after. Above the core count, other processes were competing: the 440 small "
              "sequential decoder steps of a transcription suffer most (in one session the same 5.8 s clip took "
              "from 0.6 s to 16 s), so compare runs only at similar load.", "",
              "Reproduce: `.venv/bin/python -m bench media` (or `.venv/bin/python -m bench.bench_media` to "
              "print this section only)."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
