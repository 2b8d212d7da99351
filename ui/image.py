"""Image tab: upload, paste or webcam + a question -> a streamed answer; "send to chat" keeps it."""
from __future__ import annotations

import time
from functools import partial
from typing import Any, Iterator

import gradio as gr

from ui.conversation import STREAM_INTERVAL
from ui.chat_format import reply_content
from ui.errors import message_for, shown_to_user
from ui.i18n import lang_of, say, t
from ui.page import ChatView, Shared, view_values
from ui.services import provenance

PRIVATE = {"api_visibility": "private"}

QUIET = {"show_progress": "hidden", **PRIVATE}   # refusals are toasts, never "Error" pills


def uploaded_path(image: Any) -> str | None:
    """The Image input arrives unprocessed (preprocess=False: Gradio's own decoding would show its internals
    for a file that is not an image); the engine checks the file itself and says why it is refused."""
    if isinstance(image, dict):
        return image.get("path") or None
    return image if isinstance(image, str) and image else None


class ImageHandlers:
    def __init__(self, shared: Shared):
        self.shared = shared

    def ask(self, image: Any, question: Any, request: gr.Request) -> Iterator[tuple]:
        """Stream the image model's answer; the finished answer is kept in state for "send to chat"."""
        lang = lang_of(request)
        image = uploaded_path(image)
        if not image:
            raise gr.Error(say(lang, "need_image"), print_exception=False)
        services = self.shared.services
        key = (request.session_hash or "") + ":image"
        cancel = self.shared.convo.cancels.start(key)
        question = (question or "").strip()
        try:
            yield say(lang, "working"), gr.skip()      # the image model may take seconds to load on first use
            try:
                with shown_to_user(lang):
                    settings = services.default_settings()
                    system = settings["system_prompt"]
                    messages = ([{"role": "system", "content": system}] if system.strip() else []) + \
                        [{"role": "user", "content": question}]
                    gen = services.reply(messages, settings, cancel, image=image)
            except gr.Error:
                yield "", gr.skip()                    # refused: no "working" left behind
                raise
            text, last, error = "", 0.0, None
            try:
                for piece in gen.stream:
                    text += piece
                    if time.monotonic() - last >= STREAM_INTERVAL:
                        last = time.monotonic()
                        yield text, gr.skip()
            except Exception as exc:  # noqa: BLE001 - GenerationError and friends: shown below, partial kept
                error = exc
            stats = gen.stream.stats
            status = "error" if error else ("stopped" if stats.finish_reason == "cancelled" else "complete")
            prov = provenance(gen, stats)
            if stats.completion_tokens:
                services.metrics.record(gen.model, stats)
            kept = {"question": question, "image": image, "text": text, "status": status, "provenance": prov}
            yield reply_content(text, prov, status, partial(say, lang)), kept
            if error is not None:
                raise gr.Error(message_for(error, lang) or str(error), print_exception=False)
        finally:
            self.shared.convo.cancels.finish(key, cancel)

    def stop(self, request: gr.Request) -> None:
        self.shared.convo.cancels.stop((request.session_hash or "") + ":image")

    def to_chat(self, kept: Any, token: Any, session_id: Any, request: gr.Request) -> tuple:
        """Put the question, the image and the answer into the current chat (a new one if there is none)."""
        lang = lang_of(request)
        if not kept or not kept.get("text") and kept.get("status") != "complete":
            raise gr.Error(say(lang, "no_answer"), print_exception=False)
        with shown_to_user(lang):
            owner = self.shared.owner(request, token)
            convo = self.shared.convo
            session = convo.add_user(owner, session_id or None, kept["question"], image_path=kept["image"])
            session = convo.store.append(owner, session["id"], {
                "role": "assistant", "content": kept["text"], "status": kept["status"],
                "provenance": kept["provenance"]})
            gr.Info(say(lang, "sent_to_chat", title=session["title"]))
            return view_values(self.shared, owner, session, request)


def build_and_wire(shared: Shared, view: ChatView, owner_token: gr.BrowserState) -> None:
    h = ImageHandlers(shared)
    with gr.Row():
        with gr.Column():
            image = gr.Image(label=t("image.input"), sources=["upload", "clipboard", "webcam"], type="filepath",
                             elem_id="image-input", height=360)
            question = gr.Textbox(label=t("image.question"), placeholder=t("image.question_ph"), lines=2,
                                  elem_id="image-question")
            with gr.Row():
                ask = gr.Button(t("image.ask"), variant="primary", elem_id="image-ask")
                stop = gr.Button(t("image.stop"), variant="secondary", elem_id="image-stop")   # red only while it runs
        with gr.Column():
            gr.Markdown(t("image.answer"), elem_id="image-answer-title", elem_classes=["answer-title"])  # Markdown shows no label
            answer = gr.Markdown(label=t("image.answer"), elem_id="image-answer", min_height=200,
                                 container=True, show_label=True)
            to_chat = gr.Button(t("image.to_chat"), elem_id="image-to-chat")
    kept = gr.State(None)
    for trigger in (ask.click, question.submit):
        trigger(lambda: gr.Button(variant="stop"), None, stop, queue=False, **QUIET) \
            .then(h.ask, [image, question], [answer, kept], concurrency_id="generate", preprocess=False, **QUIET) \
            .then(lambda: gr.Button(variant="secondary"), None, stop, queue=False, **QUIET)
    stop.click(h.stop, None, None, queue=False, **QUIET)
    to_chat.click(h.to_chat, [kept, owner_token, view.session_id], view.outputs(), **QUIET)
