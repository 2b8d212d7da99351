"""Text <-> ids for a chat model, and which of the two prompt paths the model takes.

Path "mistral": the tokenizer has Mistral's [INST]/[/INST] control tokens; prompts are built by
engine/prompting/mistral.py with ids equal to mistral-common's. When the folder has a SentencePiece
`tokenizer.model` (Mistral v0.3 and our demo models), text is encoded with SentencePiece itself: the
transformers fast tokenizer merges runs of spaces differently.
Path "chat_template": any other tokenizer with a chat template (Llama, Qwen, Gemma, Phi, SmolLM...);
prompts come from the tokenizer's own template (engine/prompting/template.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import TemplateMissing

if TYPE_CHECKING:
    from sentencepiece import SentencePieceProcessor
    from transformers import PreTrainedTokenizerBase

MISTRAL, CHAT_TEMPLATE = "mistral", "chat_template"
PATH_LABELS = {MISTRAL: "Mistral instruct format (mistral-common ids)",
               CHAT_TEMPLATE: "the tokenizer's own chat template"}


@dataclass(frozen=True)
class TextCodec:
    tokenizer: PreTrainedTokenizerBase            # always loaded: generate() and tools need it
    sentencepiece: SentencePieceProcessor | None  # when the folder ships tokenizer.model
    bos: int | None
    eos: int                       # the main end token (also used for padding)
    inst: int                      # [INST] / [/INST]; -1 on the chat-template path
    inst_end: int
    path: str = MISTRAL
    stop_ids: tuple[int, ...] = ()  # every id that ends a reply (eos + generation_config's eos ids)

    @classmethod
    def load(cls, folder: str | Path, tokenizer: PreTrainedTokenizerBase) -> "TextCodec":
        """Pick the prompt path from the model's files: Mistral control tokens, else a chat template."""
        inst, inst_end = tokenizer.convert_tokens_to_ids(["[INST]", "[/INST]"])
        if inst not in (None, tokenizer.unk_token_id) and inst_end not in (None, tokenizer.unk_token_id):
            spm = None
            model_file = Path(folder) / "tokenizer.model"
            if model_file.is_file():
                import sentencepiece

                spm = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
            eos = tokenizer.eos_token_id
            return cls(tokenizer, spm, tokenizer.bos_token_id, eos, inst, inst_end, MISTRAL, (eos,))
        if not getattr(tokenizer, "chat_template", None):
            raise TemplateMissing(
                f"{Path(folder).name}: the tokenizer has no chat template and is not a Mistral instruct tokenizer, "
                "so there is no way to build a chat prompt: add the model's template as chat_template.jinja "
                "(or a \"chat_template\" key in tokenizer_config.json) to the folder, or use its -Instruct/-Chat variant")
        stops = end_token_ids(folder, tokenizer)
        if not stops:
            raise TemplateMissing(f"{Path(folder).name}: no end-of-sequence token in the tokenizer or "
                                  "generation_config.json: replies would never end; set eos_token_id there")
        return cls(tokenizer, None, tokenizer.bos_token_id, stops[0], -1, -1, CHAT_TEMPLATE, stops)

    @property
    def stops(self) -> tuple[int, ...]:
        return self.stop_ids or (self.eos,)

    def reply_tokens(self, ids: list[int]) -> int:
        """How many of a reply's ids count as its tokens: an end token ends it (only the last id can be one:
        generation stops there, and a minimum length masks them before) and is not counted."""
        return len(ids) - (bool(ids) and ids[-1] in self.stops)

    def encode(self, text: str) -> list[int]:
        """Ids of plain text; strings such as "[INST]" or "<|im_end|>" inside it stay text, never control tokens."""
        if not text:
            return []
        if self.sentencepiece is not None:
            return list(self.sentencepiece.encode(text))
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, control tokens left out."""
        special = {self.bos, self.eos, self.inst, self.inst_end, *self.stops}
        ids = [i for i in ids if i not in special]
        if self.sentencepiece is not None:
            return self.sentencepiece.decode(ids)
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def end_token_ids(folder: str | Path, tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """The tokenizer's eos plus generation_config.json's eos_token_id (an int or a list), in that order."""
    ids: list[int] = []
    gen_file = Path(folder) / "generation_config.json"
    if gen_file.is_file():
        try:
            value = json.loads(gen_file.read_text()).get("eos_token_id")
        except (OSError, ValueError):
            value = None
        ids += [value] if isinstance(value, int) else [v for v in (value or []) if isinstance(v, int)]
    if isinstance(tokenizer.eos_token_id, int):
        ids.insert(0, tokenizer.eos_token_id)
    return tuple(dict.fromkeys(ids))
