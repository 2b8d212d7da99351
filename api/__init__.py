"""OpenAI-compatible routes and /health, mounted next to the Gradio app on the same port."""
from api.routes import build_api

__all__ = ["build_api"]
