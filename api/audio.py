"""POST /v1/audio/transcriptions (multipart file -> text) and POST /v1/audio/speech (text -> WAV), like OpenAI.

Both run on the speech models of the ModelManager (loaded on first use). `model` is accepted as
given (whisper-1, tts-1, ...): the configured speech models answer. Speech is WAV only; the voice is
`ko` or `en`, or chosen from the text (Hangul -> Korean) for any other name.
"""
from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api.errors import ApiError, bad_request, unavailable
from api.responses import transcription, verbose_transcription, wire
from api.schemas import SpeechRequest
from api.state import ApiState
from engine.errors import EngineError

TRANSCRIPT_FORMATS = ("json", "text", "verbose_json")


def _use(state: ApiState, name: str, what: str, call) -> Any:
    """Run `call(model)` with the manager's model `name`. Engine errors answer as themselves (api/errors.py:
    ImageError/AudioError 400 invalid_audio, SpeechError 400 invalid_input); a model that cannot be had names
    the feature that needed it (503)."""
    if state.manager is None:
        raise unavailable(what, "no model manager is configured")
    try:
        with state.manager.use(name) as model:
            return call(model)
    except EngineError as exc:
        if exc.code == "model_not_available":
            raise unavailable(what, str(exc).strip("'\"")) from None
        raise
    except KeyError as exc:
        raise unavailable(what, str(exc).strip("'\"")) from None


def router(state: ApiState) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/audio/transcriptions")
    async def transcriptions(file: UploadFile = File(...), model: str = Form("whisper-1"),
                             language: str | None = Form(None), response_format: str = Form("json")):
        if response_format not in TRANSCRIPT_FORMATS:
            raise bad_request(f"response_format {response_format!r} is not supported; use one of "
                              f"{', '.join(TRANSCRIPT_FORMATS)}", "response_format")
        data = await file.read(state.max_upload_bytes + 1)
        if len(data) > state.max_upload_bytes:
            raise ApiError(413, f"the audio file is larger than {state.cfg.server.max_upload_mb} MB", param="file",
                           code="file_too_large")
        if not data:
            raise bad_request("the audio file is empty", "file")
        tr = await anyio.to_thread.run_sync(
            _use, state, "stt", "speech-to-text", lambda stt: stt.transcribe(data, language or None))
        state.counters.add("transcriptions")
        if response_format == "text":
            return PlainTextResponse(tr.text)
        if response_format == "verbose_json":
            return JSONResponse(wire(verbose_transcription(tr)))
        return JSONResponse(wire(transcription(tr.text)))

    @r.post("/v1/audio/speech")
    async def speech(body: SpeechRequest):
        from engine.media.speech import text_language

        if body.response_format != "wav":
            raise bad_request(f"response_format {body.response_format!r} is not supported; this server speaks wav",
                              "response_format")
        text = body.input.strip()
        if not text:
            raise bad_request("input is empty", "input")
        lang = body.voice if body.voice in ("ko", "en") else text_language(text)
        sp = await anyio.to_thread.run_sync(
            _use, state, f"tts-{lang}", "text-to-speech", lambda voice: voice.speak(text))
        state.counters.add("speech")
        return Response(sp.wav, media_type="audio/wav",
                        headers={"X-Audio-Seconds": f"{sp.seconds:.2f}", "X-Voice-Language": sp.language})

    return r
