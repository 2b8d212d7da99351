"""OpenAI's presence and frequency penalties, as a logits processor for the plain generation path.

OpenAI: logit[j] -= presence_penalty * (count[j] > 0) + frequency_penalty * count[j], counted over the tokens
generated so far (vLLM reads it the same way: the reply's tokens, not the prompt's). transformers has only the
multiplicative repetition_penalty over prompt and reply, so this small processor is ours.
"""
from __future__ import annotations

import torch


class PresenceFrequencyPenalty:
    """transformers LogitsProcessor: subtracts the penalties for each token already in the reply."""

    def __init__(self, presence: float, frequency: float):
        self.presence, self.frequency = float(presence), float(frequency)
        self._reply_starts = 0

    def restart_at(self, reply_starts: int) -> None:
        """A new generate() call whose input_ids hold the reply from position `reply_starts` on."""
        self._reply_starts = reply_starts

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        reply = input_ids[:, self._reply_starts:]
        if reply.shape[1] == 0:
            return scores
        vocab = scores.shape[-1]
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, reply.clamp(max=vocab - 1), torch.ones_like(reply, dtype=scores.dtype))
        return scores - self.presence * (counts > 0).to(scores.dtype) - self.frequency * counts
