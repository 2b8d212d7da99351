"""Demo speech models: a tiny Whisper (speech -> text) and tiny MMS-style VITS voices (text -> speech).

Same classes, files and generation settings as openai/whisper-* and facebook/mms-tts-*, scaled down
and with random seeded weights. The Whisper tokenizer is byte-level BPE over a vocabulary we write
ourselves (256 bytes, no merges) followed by Whisper's special tokens in Whisper's order, so that
language detection, `language=`/`task=` prompts and timestamp ids work exactly as with the real model.
"""
from __future__ import annotations

import json
import string
from pathlib import Path

from engine.loading.demo.build import cached_build

WHISPER_SIZES = {
    "tiny": dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128),
}
VITS_SIZES = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64, flow_size=32,
                 spectrogram_bins=65, upsample_initial_channel=32, upsample_rates=[8, 8, 2, 2],
                 upsample_kernel_sizes=[16, 16, 4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
                 duration_predictor_filter_channels=32, duration_predictor_num_flows=2,
                 prior_encoder_num_flows=2, prior_encoder_num_wavenet_layers=2,
                 posterior_encoder_num_wavenet_layers=2, depth_separable_num_layers=2),
}
# MMS language codes (ISO 639-3) and whether the real checkpoint's tokenizer romanises (uroman) first.
TTS_LANGUAGES = {"ko": ("kor", True), "en": ("eng", False)}
BUILDER_VERSION = 1


def demo_whisper_model(size: str = "tiny", seed: int = 0) -> Path:
    """Folder of a demo Whisper model (config, safetensors, tokenizer, feature extractor); cached."""
    if size not in WHISPER_SIZES:
        raise ValueError(f"demo whisper size {size!r}: choose one of {', '.join(WHISPER_SIZES)}")
    spec = {"arch": "WhisperForConditionalGeneration", "size": WHISPER_SIZES[size], "seed": seed,
            "v": BUILDER_VERSION}
    return cached_build(f"whisper-{size}", spec, lambda out: _build_whisper(out, WHISPER_SIZES[size], seed))


def demo_tts_model(lang: str = "ko", size: str = "tiny", seed: int = 0) -> Path:
    """Folder of a demo MMS-style VITS voice for `lang` ("ko" romanises with uroman, like mms-tts-kor)."""
    if lang not in TTS_LANGUAGES:
        raise ValueError(f"demo voice language {lang!r}: choose one of {', '.join(TTS_LANGUAGES)}")
    if size not in VITS_SIZES:
        raise ValueError(f"demo voice size {size!r}: choose one of {', '.join(VITS_SIZES)}")
    code, uroman = TTS_LANGUAGES[lang]
    spec = {"arch": "VitsModel", "lang": code, "uroman": uroman, "size": VITS_SIZES[size], "seed": seed,
            "v": BUILDER_VERSION}
    return cached_build(f"mms-tts-{code}-{size}", spec,
                        lambda out: _build_vits(out, VITS_SIZES[size], code, uroman, seed))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-ins for the 256 byte values (what byte-level BPE vocabularies hold)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def whisper_special_tokens() -> list[str]:
    """Whisper's special tokens in its order: the language ids must follow <|startoftranscript|> directly."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return (["<|startoftranscript|>"] + [f"<|{code}|>" for code in LANGUAGES]
            + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
               "<|notimestamps|>"])


def _build_whisper(out: Path, size: dict, seed: int) -> None:
    import torch
    from transformers import (AddedToken, GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    byte_chars = _bytes_to_unicode()
    vocab = {byte_chars[b]: b for b in range(256)}
    vocab["<|endoftext|>"] = 256
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in whisper_special_tokens()],
                         special_tokens=True)
    tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False) for i in range(1501)])
    ids = tokenizer.convert_tokens_to_ids
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    feature_extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160,
                                                chunk_length=30, n_fft=400)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(str(out))

    begin_suppress = [ids(byte_chars[ord(" ")]), eot]
    # Random weights favour control and timestamp ids; suppressing them lets the demo show its noise as text.
    suppress = [i for i in range(sot, len(tokenizer))]
    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, max_source_positions=1500,
                           max_target_positions=448, decoder_start_token_id=sot, pad_token_id=eot,
                           bos_token_id=eot, eos_token_id=eot, begin_suppress_tokens=begin_suppress,
                           suppress_tokens=suppress, **size)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    # A fresh GenerationConfig: one derived from the model config is reloaded without the Whisper fields.
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=448,
        is_multilingual=True, lang_to_id={f"<|{code}|>": ids(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"translate": ids("<|translate|>"), "transcribe": ids("<|transcribe|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"), prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=50, begin_suppress_tokens=begin_suppress, suppress_tokens=suppress,
        alignment_heads=[[size["decoder_layers"] - 1, 0]], return_timestamps=False)
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "demo.json").write_text(json.dumps({"demo": True, "note": "random weights: transcripts are noise",
                                               "seed": seed}))


def _build_vits(out: Path, size: dict, code: str, uroman: bool, seed: int) -> None:
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    # Like the MMS vocabularies: a blank at id 0 (put between characters), then the romanised alphabet.
    chars = ["_", " ", "'", "-"] + list(string.ascii_lowercase) + list(string.digits)
    vocab = {c: i for i, c in enumerate(chars)} | {"<unk>": len(chars)}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    tokenizer = VitsTokenizer(vocab_file=str(out / "vocab.json"), pad_token="_", unk_token="<unk>", language=code,
                              add_blank=True, normalize=True, phonemize=False, is_uroman=uroman)
    tokenizer.save_pretrained(str(out))
    config = VitsConfig(vocab_size=len(vocab), sampling_rate=16000, pad_token_id=0, **size)
    torch.manual_seed(seed)
    model = VitsModel(config)
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "demo.json").write_text(json.dumps({"demo": True, "note": "random weights: speech is noise",
                                               "seed": seed, "language": code}))
