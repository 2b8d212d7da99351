"""Text <-> ids for a Mistral model, the way Mistral's reference library does it.

When the model folder has a SentencePiece `tokenizer.model` (Mistral v0.3 and our demo models),
text is encoded with SentencePiece itself: the transformers fast tokenizer merges runs of spaces
differently, which would make our prompts differ from mistral-common's for the same chat.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TextCodec:
    tokenizer: Any                 # the transformers tokenizer (always loaded: generate() and tools need it)
    sentencepiece: Any | None      # SentencePieceProcessor when the folder ships tokenizer.model
    bos: int
    eos: int
    inst: int
    inst_end: int

    @classmethod
    def load(cls, folder: str | Path, tokenizer: Any) -> "TextCodec":
        spm = None
        model_file = Path(folder) / "tokenizer.model"
        if model_file.is_file():
            import sentencepiece

            spm = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        inst, inst_end = tokenizer.convert_tokens_to_ids(["[INST]", "[/INST]"])
        if inst in (None, tokenizer.unk_token_id) or inst_end in (None, tokenizer.unk_token_id):
            raise ValueError("this tokenizer has no [INST]/[/INST] control tokens: it is not a Mistral instruct tokenizer")
        return cls(tokenizer, spm, tokenizer.bos_token_id, tokenizer.eos_token_id, inst, inst_end)

    def encode(self, text: str) -> list[int]:
        """Ids of plain text; strings such as "[INST]" inside it stay text, never control tokens."""
        if not text:
            return []
        if self.sentencepiece is not None:
            return list(self.sentencepiece.encode(text))
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, control tokens left out."""
        special = {self.bos, self.eos, self.inst, self.inst_end}
        ids = [i for i in ids if i not in special]
        if self.sentencepiece is not None:
            return self.sentencepiece.decode(ids)
        return self.tokenizer.decode(ids, skip_special_tokens=True)
