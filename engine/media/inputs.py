"""Check uploaded images and audio before a model sees them: decode, validate, normalise.

Every rejection is a MediaError with one English sentence the UI can show as is. Images come out
RGB and upright (EXIF rotation applied); audio comes out mono float32 at 16 kHz.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from engine.errors import AudioError, ImageError, MediaError

if TYPE_CHECKING:
    from PIL import Image

# Decoders we allow (phone MPO photos open as JPEG). PIL would otherwise also try EPS (which runs
# Ghostscript) and other rarities.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
AUDIO_FORMATS = "WAV, FLAC, OGG/Opus, MP3 or AIFF"
TARGET_RATE = 16_000
# An uploaded image as it arrives: the file's bytes, or the path of the file.
ImageData = bytes | str | Path


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000          # below PIL's own bomb limit (89M), so we reject first, cleanly
    max_side: int = 12_000
    model_side: int = 2048                # larger images are shrunk: the model sees at most ~1000 px anyway


@dataclass(frozen=True)
class CheckedImage:
    image: Image.Image                    # mode RGB
    format: str                           # "JPEG", "PNG", ...
    original_size: tuple[int, int]        # (width, height) as stored in the file
    original_mode: str                    # "RGBA", "CMYK", "P", ...
    rotated: bool                         # EXIF orientation was applied
    resized: bool                         # shrunk to ImageLimits.model_side


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_seconds: float = 600.0
    min_rate: int = 4_000
    max_rate: int = 384_000


@dataclass(frozen=True)
class AudioClip:
    samples: np.ndarray                   # float32, mono, TARGET_RATE
    sample_rate: int                      # always TARGET_RATE
    original_rate: int
    channels: int
    seconds: float

    @property
    def resampled(self) -> bool:
        return self.original_rate != self.sample_rate


def _audio_refused(message: str, reason: str, **values: object) -> AudioError:
    """An AudioError that also names its sentence (values["sentence"], a ui/i18n key) and the numbers it needs,
    so a Korean page shows a Korean line, not this English message inside a Korean frame."""
    return AudioError(message, values={"sentence": f"audio_{reason}", **values})


def _read_bytes(data: bytes | str | Path, limit: int, what: str) -> bytes:
    def refused(message: str, reason: str, **values: object) -> MediaError:
        return ImageError(message) if what == "image" else _audio_refused(message, reason, **values)

    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        path = Path(data)
        try:
            size = path.stat().st_size
            if size > limit:
                raise refused(f"the {what} is {size / 2**20:.1f} MB; at most {limit / 2**20:.0f} MB is accepted",
                              "too_big", mb=size / 2**20, limit_mb=limit / 2**20)
            raw = path.read_bytes()
        except FileNotFoundError:
            raise refused(f"the {what} file was not found", "unreadable") from None
        except IsADirectoryError:
            raise refused(f"the {what} path is a folder, not a file", "unreadable") from None
        except OSError as exc:
            raise refused(f"the {what} file cannot be read ({exc.strerror})", "unreadable") from None
    if not raw:
        raise refused(f"the {what} file is empty", "empty")
    if len(raw) > limit:
        raise refused(f"the {what} is {len(raw) / 2**20:.1f} MB; at most {limit / 2**20:.0f} MB is accepted",
                      "too_big", mb=len(raw) / 2**20, limit_mb=limit / 2**20)
    return raw


def load_image(data: ImageData, limits: ImageLimits = ImageLimits()) -> CheckedImage:
    """Decode and check an uploaded image; return it upright, RGB and at most `model_side` pixels wide."""
    from PIL import Image, UnidentifiedImageError

    raw = _read_bytes(data, limits.max_bytes, "image")
    try:
        img = Image.open(io.BytesIO(raw), formats=list(IMAGE_FORMATS))
    except UnidentifiedImageError:
        raise ImageError("this file is not an image we can read; use JPEG, PNG, WEBP, GIF, BMP or TIFF") from None
    except Image.DecompressionBombError:
        raise ImageError("the image claims more pixels than is safe to decode (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image file is damaged ({exc})") from None
    _check_size(*img.size, limits)  # from the header alone: a bomb is refused before it is decoded
    try:
        img.load()  # decodes now: truncated or corrupt data fails here, not inside the model
    except Image.DecompressionBombError:
        raise ImageError("the image claims more pixels than is safe to decode (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"the image file is truncated or damaged ({str(exc).rstrip('.')})") from None
    return check_image(img, limits)


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    if width < 1 or height < 1:
        raise ImageError("the image has no pixels")
    if width * height > limits.max_pixels:
        raise ImageError(f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
                         f"at most {limits.max_pixels / 1e6:.0f} megapixels are accepted")
    if max(width, height) > limits.max_side:
        raise ImageError(f"the image is {width}x{height} pixels; no side may be longer than {limits.max_side}")


def check_image(img, limits: ImageLimits = ImageLimits()) -> CheckedImage:
    """An already decoded PIL image (e.g. from a UI widget) -> upright RGB CheckedImage, same limits."""
    from PIL import Image, ImageOps

    width, height = img.size
    _check_size(width, height, limits)
    fmt, mode = img.format or "", img.mode
    upright = _exif_upright(img, ImageOps)
    rgb = _to_rgb(upright)
    resized = max(rgb.size) > limits.model_side
    if resized:
        rgb = rgb.copy() if rgb is img else rgb
        rgb.thumbnail((limits.model_side, limits.model_side), Image.Resampling.BICUBIC)
    return CheckedImage(rgb, fmt, (width, height), mode, rotated=upright is not img, resized=resized)


def _exif_upright(img, ImageOps):
    """Apply the EXIF orientation, as phone photos need; a malformed EXIF block leaves the image as stored."""
    if img.getexif().get(0x0112, 1) in (None, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError):
        return img


def _to_rgb(img):
    """Any PIL mode to RGB; transparency lands on white, 16-bit and float grayscale are scaled, not clipped."""
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_audio(data: bytes | str | Path, limits: AudioLimits = AudioLimits()) -> AudioClip:
    """Decode an audio file (any rate, mono or multi-channel, int or float) to 16 kHz mono float32."""
    import soundfile as sf

    raw = _read_bytes(data, limits.max_bytes, "audio")
    if _is_container(raw):   # WebM/Matroska or MP4/M4A, as browsers record: libsndfile cannot read them
        samples, rate = _decode_with_av(raw, limits)
        return clip_from_samples(samples, rate)
    try:
        with sf.SoundFile(io.BytesIO(raw)) as f:
            rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
            if not limits.min_rate <= rate <= limits.max_rate:
                raise _audio_refused(f"the audio claims a sample rate of {rate} Hz; expected "
                                     f"{limits.min_rate} to {limits.max_rate} Hz", "rate", rate=rate,
                                     low=limits.min_rate, high=limits.max_rate)
            if channels < 1:
                raise _audio_refused("the audio has no channels", "damaged")
            if frames > limits.max_seconds * rate:
                raise _audio_refused(f"the audio is {frames / rate:.0f} s long; at most {limits.max_seconds:.0f} s "
                                     "are accepted", "too_long", seconds=frames / rate, limit=limits.max_seconds)
            samples = f.read(dtype="float32", always_2d=True)
    except MediaError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError) as exc:
        # libsndfile names the buffer it was given ("Error opening <_io.BytesIO object at 0x...>: "): not for users
        why = re.sub(r"^Error opening <[^>]*>:\s*", "", str(exc).splitlines()[0] if str(exc) else "")
        raise _audio_refused(f"this file is not audio we can read ({AUDIO_FORMATS}): {why[:120]}",
                             "not_audio") from None
    if samples.size and not np.isfinite(samples).all():
        raise _audio_refused("the audio contains invalid samples (NaN or infinity); the file is damaged", "damaged")
    return clip_from_samples(samples, rate)


def _is_container(raw: bytes) -> bool:
    """EBML (WebM, Matroska) or an ISO-BMFF `ftyp` box (MP4, M4A): the formats we hand to FFmpeg (PyAV)."""
    return raw[:4] == b"\x1a\x45\xdf\xa3" or raw[4:8] == b"ftyp"


def _decode_with_av(raw: bytes, limits: AudioLimits) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with FFmpeg's libraries (PyAV) to mono float32 at its own rate, stopping
    as soon as it runs past max_seconds (a browser's WebM often states no duration)."""
    import av

    try:
        with av.open(io.BytesIO(raw), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise _audio_refused(f"this file holds no audio we can read ({AUDIO_FORMATS}, WebM or MP4)",
                                     "not_audio")
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            if not limits.min_rate <= rate <= limits.max_rate:
                raise _audio_refused(f"the audio claims a sample rate of {rate} Hz; expected "
                                     f"{limits.min_rate} to {limits.max_rate} Hz", "rate", rate=rate,
                                     low=limits.min_rate, high=limits.max_rate)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks, frames, cap = [], 0, int(limits.max_seconds * rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    frames += len(chunk)
                if frames > cap:
                    raise _audio_refused(f"the audio is longer than {limits.max_seconds:.0f} s; at most "
                                         f"{limits.max_seconds:.0f} s are accepted", "over_limit",
                                         limit=limits.max_seconds)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except MediaError:
        raise
    except (av.FFmpegError, ValueError, EOFError, OSError, StopIteration) as exc:
        raise _audio_refused(f"this file is not audio we can read ({AUDIO_FORMATS}, WebM or MP4): "
                             f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}",
                             "not_audio") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
    if samples.size and not np.isfinite(samples).all():
        raise _audio_refused("the audio contains invalid samples (NaN or infinity); the file is damaged", "damaged")
    return samples, rate


def clip_from_samples(samples: np.ndarray, rate: int) -> AudioClip:
    """(frames,) or (frames, channels) samples at `rate` -> 16 kHz mono AudioClip."""
    arr = np.asarray(samples)
    if arr.dtype.kind in "iu":  # integer PCM from a caller: scale to [-1, 1]
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise _audio_refused("audio samples must be (frames,) or (frames, channels)", "damaged")
    if arr.size and not np.isfinite(arr).all():
        raise _audio_refused("the audio contains invalid samples (NaN or infinity); the file is damaged", "damaged")
    channels = arr.shape[1]
    mono = arr.mean(axis=1) if channels > 1 else arr[:, 0]
    out = resample(mono, rate, TARGET_RATE)
    return AudioClip(out, TARGET_RATE, int(rate), int(channels), len(mono) / float(rate))


def resample(samples: np.ndarray, rate: int, target: int = TARGET_RATE) -> np.ndarray:
    """Polyphase resampling (scipy): exact for rational ratios such as 44100 -> 16000 (160/441)."""
    if rate == target or samples.size == 0:
        return np.ascontiguousarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(rate), int(target))
    return resample_poly(samples, target // g, int(rate) // g).astype(np.float32)


def loudest_frame_db(samples: np.ndarray, rate: int, frame_seconds: float = 0.03) -> float:
    """RMS level in dBFS of the loudest 30 ms frame (DC removed); -inf for empty or digital silence."""
    if samples.size == 0:
        return float("-inf")
    x = samples.astype(np.float64) - float(samples.mean())
    n = max(1, int(rate * frame_seconds))
    usable = (len(x) // n) * n
    frames = x[:usable].reshape(-1, n) if usable else x[None, :]
    rms = float(np.sqrt((frames ** 2).mean(axis=1)).max())
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def is_silent(samples: np.ndarray, rate: int, threshold_db: float = -45.0) -> bool:
    """True when no 30 ms frame is louder than `threshold_db` (room noise sits near -60 dBFS)."""
    return loudest_frame_db(samples, rate) < threshold_db


def split_for_whisper(samples: np.ndarray, rate: int, seconds: float = 30.0, search: float = 5.0) -> list[np.ndarray]:
    """Cut long audio into <= 30 s pieces, each cut at the quietest 100 ms in the last 5 s of a window,
    so that words are rarely split in half."""
    window = int(seconds * rate)
    if len(samples) <= window:
        return [samples]
    pieces, start = [], 0
    step = max(1, int(0.1 * rate))
    while len(samples) - start > window:
        lo, hi = start + window - int(search * rate), start + window
        energy = [float(np.square(samples[i:i + step]).mean()) for i in range(lo, hi - step + 1, step)]
        cut = lo + int(np.argmin(energy)) * step + step // 2 if energy else hi
        pieces.append(samples[start:cut])
        start = cut
    pieces.append(samples[start:])
    return pieces
