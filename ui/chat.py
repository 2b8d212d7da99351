"""Chat tab: a streamed conversation with Stop."""
from __future__ import annotations

import threading
from typing import Any, Iterator

import gradio as gr

from engine.generation import GenerationParams
from engine.prompt import PromptError


def message_text(content: Any) -> str:
    """Gradio 6 hands content as a list of parts; the engine takes plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return content.get("text", "") if content.get("type", "text") == "text" else ""
    if isinstance(content, (list, tuple)):
        return "".join(message_text(p) for p in content)
    return ""


def to_engine_messages(history: list[dict], system_prompt: str) -> list[dict]:
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    return msgs + [{"role": m["role"], "content": message_text(m["content"])} for m in history]


class ChatHandlers:
    """Handlers bound to one engine; per-request cancel events live here, keyed by the browser session."""

    def __init__(self, cfg: Any, engine: Any):
        self.cfg, self.engine = cfg, engine
        self.params = GenerationParams.from_config(cfg.generation)
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _cancel_for(self, key: str) -> threading.Event:
        with self._lock:
            event = self._cancels[key] = threading.Event()
            return event

    def stop(self, request: gr.Request) -> None:
        with self._lock:
            event = self._cancels.get(request.session_hash or "")
        if event:
            event.set()

    def reply(self, history: list[dict], request: gr.Request) -> Iterator[list[dict]]:
        cancel = self._cancel_for(request.session_hash or "")
        try:
            stream = self.engine.stream(to_engine_messages(history, self.cfg.generation.system_prompt),
                                        self.params, cancel)
        except PromptError as exc:
            raise gr.Error(str(exc)) from None
        history = history + [{"role": "assistant", "content": ""}]
        text = ""
        for piece in stream:
            text += piece
            history[-1] = {"role": "assistant", "content": text}
            yield history
        if stream.stats.finish_reason == "cancelled":
            history[-1] = {"role": "assistant", "content": text + " ⏹"}
            yield history

    def api_chat(self, message: str, system_prompt: str = "") -> Iterator[str]:
        """Named endpoint `chat`: one message in, the growing reply out."""
        if not message.strip():
            raise gr.Error("The message is empty. / 메시지가 비어 있습니다.")
        msgs = to_engine_messages([{"role": "user", "content": message}], system_prompt)
        text = ""
        for piece in self.engine.stream(msgs, self.params):
            text += piece
            yield text


def add_user_message(message: str, history: list[dict]) -> tuple[str, list[dict]]:
    if not message.strip():
        raise gr.Error("The message is empty. / 메시지가 비어 있습니다.")
    return "", history + [{"role": "user", "content": message}]


def build(cfg: Any, engine: Any) -> None:
    handlers = ChatHandlers(cfg, engine)
    chatbot = gr.Chatbot(label="Chat", height=480)
    box = gr.Textbox(placeholder="Message / 메시지", show_label=False)
    with gr.Row():
        send = gr.Button("Send / 보내기", variant="primary")
        stop = gr.Button("Stop / 중지")
    submitted = [
        trigger(add_user_message, [box, chatbot], [box, chatbot], api_visibility="private")
        .then(handlers.reply, chatbot, chatbot, api_visibility="private")
        for trigger in (box.submit, send.click)
    ]
    stop.click(handlers.stop, None, None, cancels=submitted, api_visibility="private")
    gr.api(handlers.api_chat, api_name="chat")
