"""Every /v1 answer body, built as the `openai` package's own pydantic types and serialised once (`wire`).

Choices (message, delta, tool calls, logprobs) are built in api/choices.py. Built with the types OpenAI's
client parses, a field we get wrong (a name, a type, a missing required
field) fails here, on the server, instead of in someone's client. Where those types cannot say what we send,
a subclass of the openai type adds it, typed, and says why; tests/test_api_responses.py validates each
answer against the plain openai type too. Nothing here knows HTTP: the routes put these on the wire.
"""
from __future__ import annotations

from typing import Any, List, Literal, Optional, Sequence

from openai.types import Model
from openai.types.audio import Transcription, TranscriptionVerbose
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat import chat_completion_chunk as chunk_types
from openai.types.completion_usage import CompletionUsage
from pydantic import BaseModel

from api.choices import FinishReason, choice


def wire(obj: BaseModel) -> dict:
    """The JSON object for `obj`: only the fields we set (a field left out stays out, one set to None is null)."""
    return obj.model_dump(mode="json", exclude_unset=True)


# ---- chat completions -------------------------------------------------------------------------------------

def usage(all_stats: Sequence[Any]) -> CompletionUsage:
    prompt = all_stats[0].prompt_tokens if all_stats else 0   # one prompt, as OpenAI counts it for n > 1
    completion = sum(s.completion_tokens for s in all_stats)
    return CompletionUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def completion(id: str, created: int, model: str, outcomes: Sequence[tuple[str, Any]],
               with_logprobs: bool = False) -> ChatCompletion:
    """The whole answer: one choice per (text, stats), as OpenAI's n asks, and the usage of them all."""
    return ChatCompletion(id=id, object="chat.completion", created=created, model=model,
                          choices=[choice(i, text, stats, with_logprobs) for i, (text, stats) in enumerate(outcomes)],
                          usage=usage([stats for _, stats in outcomes]))


def chunk(id: str, created: int, model: str, delta: chunk_types.ChoiceDelta, finish_reason: FinishReason | None = None,
          index: int = 0, logprobs: chunk_types.ChoiceLogprobs | None = None) -> ChatCompletionChunk:
    """One streamed piece of one choice (finish_reason and logprobs are always sent, null when none)."""
    return ChatCompletionChunk(id=id, object="chat.completion.chunk", created=created, model=model, choices=[
        chunk_types.Choice(index=index, delta=delta, finish_reason=finish_reason, logprobs=logprobs)])


def usage_chunk(id: str, created: int, model: str, all_stats: Sequence[Any]) -> ChatCompletionChunk:
    """The last chunk when stream_options.include_usage asks: no choices, the usage of them all."""
    return ChatCompletionChunk(id=id, object="chat.completion.chunk", created=created, model=model, choices=[],
                               usage=usage(all_stats))


# ---- models -------------------------------------------------------------------------------------------------

class LocalModel(Model):
    """openai's Model plus what we add (it allows extra fields, but untyped; here they are typed):
    `prompt_path` on a base model (mistral | chat_template), and `parent` / `root` on an adapter, as vLLM
    lists a LoRA adapter (parent: the base model's id, root: the adapter's name)."""
    prompt_path: Optional[str] = None
    parent: Optional[str] = None
    root: Optional[str] = None


class ModelList(BaseModel):
    """GET /v1/models. Ours: openai has no response type for the list (its SyncPage is the client's paginator,
    not a body), so this is the body that SyncPage[Model] parses: object "list" and the models."""
    object: Literal["list"]
    data: List[LocalModel]


def base_model(name: str, created: int, prompt_path: str = "") -> LocalModel:
    extra = {"prompt_path": prompt_path} if prompt_path else {}
    return LocalModel(id=name, object="model", created=created, owned_by="local", **extra)


def adapter_model(name: str, created: int, parent: str) -> LocalModel:
    return LocalModel(id=name, object="model", created=created, owned_by="local", parent=parent, root=name)


def model_list(models: Sequence[LocalModel]) -> ModelList:
    return ModelList(object="list", data=list(models))


# ---- audio --------------------------------------------------------------------------------------------------

class VerboseTranscription(TranscriptionVerbose):
    """openai's TranscriptionVerbose plus what we send beside it: `task`, `no_speech` and `message` (the
    sentence shown when nothing was heard); and `language` may be null (nothing heard: no language), which
    TranscriptionVerbose (a str) cannot say."""
    language: Optional[str]  # type: ignore[assignment]
    task: Literal["transcribe"]
    no_speech: bool
    message: str


def transcription(text: str) -> Transcription:
    return Transcription(text=text)


def verbose_transcription(tr: Any) -> VerboseTranscription:
    """engine.media.speech.Transcript as response_format=verbose_json."""
    return VerboseTranscription(task="transcribe", text=tr.text, language=tr.language, duration=tr.seconds_audio,
                                no_speech=tr.no_speech, message=tr.message)
