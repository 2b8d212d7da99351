"""Models and generation: loading with a precision ladder, streaming chat, adapters, vision, speech.

Nothing here imports gradio, tinydb or fastapi: the engine yields plain text and data.
"""
