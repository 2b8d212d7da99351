"""Image + question (+ earlier turns) -> streamed answer, with LLaVA-NeXT (Mistral 7B by default).

The image is checked by engine.media.inputs first. The prompt is LLaVA-NeXT Mistral's
`[INST] <image>\\n{question} [/INST]`, with `<image>` expanded to as many placeholder tokens as the
any-resolution grid gives. We assemble the ids piece by piece so that text a user types ("[INST]",
"<image>") stays text, yet plain questions get exactly the ids the model card's processor call gives.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from engine.serving import zerogpu
from engine.prompting.codec import TextCodec
from config import EngineConfig
from engine.serving.generation import ChatStream, GenerationParams, Generator
from engine.errors import PromptTooLong
from engine.loading.loader import LoadPlan, LoadReport, load_pretrained, model_bytes
from engine.errors import ModelLoadError
from engine.media.inputs import CheckedImage, ImageLimits, check_image, load_image
from engine.loading.preflight import GiB
from engine.prompting.mistral import normalize_messages
from engine.loading.sources import ModelSource, resolve_source
from engine.errors import SourceError

IMAGE_TOKEN = "<image>"
DEMO_NOTICE = "Demo image model with random weights: answers are noise, not descriptions."
# The vision tower and projector stay unquantized: quantizing them hurts far more than it saves.
# transformers 5 matches these from the start of a module's full name ("model.vision_tower...") or as
# a suffix, so the bare names alone would not match; both spellings are kept for older layouts.
SKIP_QUANTIZATION = ("vision_tower", "multi_modal_projector", "model.vision_tower", "model.multi_modal_projector",
                     "lm_head")
_ANCHOR = "\n"


@dataclass(frozen=True)
class VisionPrompt:
    inputs: dict                  # input_ids, attention_mask, pixel_values, image_sizes (on the model's device)
    prompt_tokens: int
    image_tokens: int
    dropped_turns: int


def vision_load_plan(cfg: EngineConfig, budget_bytes: int | None = None) -> LoadPlan:
    """LoadPlan for the image model; `budget_bytes` (from the ModelManager) overrides engine.max_gpu_memory."""
    if budget_bytes is None and cfg.max_gpu_memory is not None:
        budget_bytes = int(cfg.max_gpu_memory * GiB)
    return LoadPlan(precision=cfg.precision, budget_bytes=budget_bytes, cpu_dtype=cfg.cpu_dtype,
                    context_tokens=cfg.max_context, headroom=cfg.kv_headroom, skip_quantization=SKIP_QUANTIZATION)


def load_vision_model(folder: str | Path, model_id: str, plan: LoadPlan) -> tuple[Any, LoadReport]:
    """LlavaNextForConditionalGeneration down the same precision ladder as the chat model."""
    from transformers import LlavaNextForConditionalGeneration

    return load_pretrained(LlavaNextForConditionalGeneration, folder, model_id, plan)


def _vision_codec(tokenizer: Any) -> TextCodec:
    """A TextCodec for decoding replies. LLaVA's own tokenizers may lack [INST] control tokens: then eos
    stands in for them (decode only drops those ids). No SentencePiece shortcut: `<image>` is not in it."""
    def control(token: str) -> int:
        tid = tokenizer.convert_tokens_to_ids(token)
        return tokenizer.eos_token_id if tid in (None, tokenizer.unk_token_id) else tid

    return TextCodec(tokenizer, None, tokenizer.bos_token_id, tokenizer.eos_token_id, control("[INST]"),
                     control("[/INST]"))


class VisionEngine:
    """A loaded LLaVA-NeXT model and its processor. Thread-safe; `slots` answers are generated at once."""

    def __init__(self, model: Any, processor: Any, report: LoadReport, *, max_context: int, slots: int = 1,
                 limits: ImageLimits = ImageLimits()):
        self.model, self.processor, self.report, self.limits = model, processor, report, limits
        self.tokenizer = processor.tokenizer
        self.codec = _vision_codec(self.tokenizer)
        self.max_context = max_context
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(getattr(processor, "image_token", IMAGE_TOKEN))
        self.generator = Generator(model, self.codec, max_context=max_context, slots=slots)
        self._pixel_dtype = next((p.dtype for n, p in model.named_parameters()
                                  if "vision_tower" in n and p.is_floating_point()), torch.float32)
        self.gpu_seconds = zerogpu.GpuSeconds()
        # Decorated once: ZeroGPU keeps a worker per decorated function (engine/serving/zerogpu.py).
        self._gpu_pieces = zerogpu.stream_on_gpu(self._pieces, lambda image, question, params, *rest:
                                                 self.gpu_seconds.tokens(params.max_new_tokens))

    @property
    def model_id(self) -> str:
        return self.report.model_id

    @classmethod
    def from_source(cls, source: ModelSource, cfg: EngineConfig, *, plan: LoadPlan | None = None,
                    notice: str = "", **kwargs: Any) -> "VisionEngine":
        from transformers import AutoImageProcessor, LlavaNextProcessor

        model, report = load_vision_model(source.folder, source.model_id, plan or vision_load_plan(cfg))
        # The PIL image processor always: torchvision may be missing, and both must give the same pixels.
        image_processor = AutoImageProcessor.from_pretrained(str(source.folder), backend="pil")
        processor = LlavaNextProcessor.from_pretrained(str(source.folder), image_processor=image_processor)
        report.demo = source.demo
        report.notice = " ".join(filter(None, [notice, DEMO_NOTICE if source.demo else "", report.notice]))
        text_config = getattr(model.config, "text_config", model.config)
        context = min(cfg.max_context, getattr(text_config, "max_position_embeddings", cfg.max_context))
        engine = cls(model, processor, report, max_context=context, **kwargs)
        engine.gpu_seconds = zerogpu.GpuSeconds.from_config(cfg)
        return engine

    @classmethod
    def load(cls, cfg: EngineConfig, *, demo: bool = False, budget_bytes: int | None = None,
             **kwargs: Any) -> "VisionEngine":
        """engine.vision_model, or (demo=True, or its files cannot be had) the demo LLaVA-NeXT with a notice."""
        from engine.loading.demo.vision import demo_vision_model

        plan = vision_load_plan(cfg, budget_bytes)
        notice = ""
        if not demo:
            try:
                return cls.from_source(resolve_source(cfg.vision_model), cfg, plan=plan, **kwargs)
            except SourceError as exc:
                if not cfg.demo_fallback:
                    raise
                notice = f"Could not load {cfg.vision_model}: {exc} -- running the demo image model instead."
        return cls.from_source(ModelSource("demo:llava-next-tiny", demo_vision_model(), True), cfg, plan=plan,
                               notice=notice, **kwargs)

    def memory_bytes(self) -> int:
        gpu, cpu = model_bytes(self.model)
        return gpu or cpu

    def close(self) -> None:
        """Drop the weights (the manager calls this when it unloads the model)."""
        self.model = None
        self.generator = None

    # -- prompt ---------------------------------------------------------------------------------------

    def _ids(self, text: str, *, user: bool, at_start: bool = False) -> list[int]:
        """Ids of `text` as it tokenises inside the prompt. User text never yields control tokens."""
        kw = {"add_special_tokens": False, "split_special_tokens": user}
        if at_start:
            return list(self.tokenizer(text, **kw)["input_ids"])
        anchor = list(self.tokenizer(_ANCHOR, **kw)["input_ids"])
        ids = list(self.tokenizer(_ANCHOR + text, **kw)["input_ids"])
        if ids[:len(anchor)] == anchor:
            return ids[len(anchor):]
        return list(self.tokenizer(text, **kw)["input_ids"])

    def _conversation_ids(self, turns: list[dict], image_tokens: int) -> list[int]:
        """[INST] <image>\\nQ1 [/INST] A1</s>[INST] Q2 [/INST] ... with the image in the first kept turn."""
        ids = [self.codec.bos]
        for i, m in enumerate(turns):
            if m["role"] == "user":
                if i == 0:
                    ids += self._ids("[INST] ", user=False, at_start=True) + [self.image_token_id] * image_tokens
                    ids += self._ids("\n" + m["content"], user=True)
                else:
                    ids += self._ids("[INST]", user=False) + self._ids(" " + m["content"], user=True)
                ids += self._ids(" [/INST]", user=False)
            else:
                ids += self._ids(" " + m["content"].strip(), user=True) + [self.codec.eos]
        return ids

    def prepare(self, image: CheckedImage | Any, question: str, history: Sequence[dict] = (), *,
                max_new_tokens: int = 512, max_history_turns: int = 20) -> VisionPrompt:
        """Check the image, expand it, and fit the conversation into the context (oldest turns go first)."""
        checked = self.check(image)
        msgs = normalize_messages(list(history) + [{"role": "user", "content": question}])
        system = msgs[0]["content"] if msgs[0]["role"] == "system" else ""
        turns = [dict(m) for m in msgs if m["role"] != "system"]
        if system:
            turns[-1]["content"] = f"{system}\n\n{turns[-1]['content']}"
        enc = self.processor(images=[checked.image], text=[IMAGE_TOKEN], return_tensors="pt")
        image_tokens = int((enc["input_ids"] == self.image_token_id).sum())
        budget = self.max_context - max_new_tokens
        pairs = [turns[i:i + 2] for i in range(0, len(turns), 2)]
        dropped = max(0, len(pairs) - max_history_turns)
        while True:
            ids = self._conversation_ids([m for p in pairs[dropped:] for m in p], image_tokens)
            if len(ids) <= budget:
                break
            if dropped >= len(pairs) - 1:
                raise PromptTooLong(f"the image and question take {len(ids)} tokens; at most {max(budget, 0)} fit "
                                    f"with a reply of {max_new_tokens} tokens: shorten the question or the reply")
            dropped += 1
        device = self.model.device
        input_ids = torch.tensor([ids], device=device)
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                  "pixel_values": enc["pixel_values"].to(device, dtype=self._pixel_dtype),
                  "image_sizes": enc["image_sizes"].to(device)}
        return VisionPrompt(inputs, len(ids), image_tokens, dropped)

    def check(self, image: CheckedImage | Any) -> CheckedImage:
        """Bytes, a path, a PIL image or a CheckedImage -> CheckedImage (raises engine.media.inputs.MediaError)."""
        if isinstance(image, CheckedImage):
            return image
        if isinstance(image, (bytes, bytearray, str, Path)):
            return load_image(image, self.limits)
        if hasattr(image, "size") and hasattr(image, "mode"):
            return check_image(image, self.limits)
        raise TypeError(f"expected image bytes, a path or a PIL image, got {type(image).__name__}")

    # -- answering ------------------------------------------------------------------------------------

    def ask(self, image: CheckedImage | Any, question: str, params: GenerationParams,
            history: Sequence[dict] = (), cancel: threading.Event | None = None) -> ChatStream:
        """Validate now (MediaError, PromptError raise here, before any text); generate while iterated,
        inside spaces.GPU on ZeroGPU (engine/serving/zerogpu.py), where a cancel event cannot follow."""
        checked = self.check(image)
        stream = self._stream(checked, question, params, history, cancel)
        if not zerogpu.enabled():
            return stream   # its stats fill as it runs, so a reader that stops early still has them
        stream.close()  # validated here; it never started
        return zerogpu.relay(self._gpu_pieces(checked, question, params, list(history), None), stream.stats)

    def _pieces(self, image: CheckedImage, question: str, params: GenerationParams, history: list[dict],
                cancel: threading.Event | None):
        """Runs inside spaces.GPU on ZeroGPU (a forked worker: plain data in, text and stats out)."""
        yield from zerogpu.text_then_stats(self._stream(image, question, params, history, cancel))

    def _stream(self, image: CheckedImage | Any, question: str, params: GenerationParams,
                history: Sequence[dict] = (), cancel: threading.Event | None = None) -> ChatStream:
        if self.generator is None:
            raise ModelLoadError("the image model was unloaded; try again")
        max_new = max(1, min(params.max_new_tokens, self.max_context - 16))
        params = replace(params, max_new_tokens=max_new)
        prompt = self.prepare(image, question, history, max_new_tokens=max_new,
                              max_history_turns=params.max_history_turns)
        stream = self.generator.stream_inputs(prompt.inputs, prompt.prompt_tokens, params, cancel)
        stream.stats.dropped_turns = prompt.dropped_turns
        if prompt.dropped_turns:
            stream.stats.notices.append(f"{prompt.dropped_turns} oldest turn(s) left out to fit the context")
        return stream


__all__ = ["DEMO_NOTICE", "IMAGE_TOKEN", "VisionEngine", "VisionPrompt", "load_vision_model", "vision_load_plan"]
