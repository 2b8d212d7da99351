"""Images and speech: input checks, LLaVA-NeXT vision, Whisper in and a voice out."""
