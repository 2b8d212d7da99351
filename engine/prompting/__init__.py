"""Conversation -> token ids and back: the Mistral and chat-template prompts, tools, constrained JSON, the detokenizer."""
