"""Gradio tabs, one module each, assembled by build_ui."""
from ui.layout import build_ui

__all__ = ["build_ui"]
