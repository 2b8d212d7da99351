"""Chat tab: the conversation, the message box (text + image), Stop, Retry, Continue, Edit, per-chat settings
(including the LoRA adapter the chat answers with), and a base-vs-adapter comparison."""
from __future__ import annotations

import html
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gradio as gr

from engine.errors import AdapterError
from ui import chat_versions
from ui.conversation import STREAM_INTERVAL, ReplyJob
from ui.chat_format import (SETTING_KEYS, continuable, engine_messages, last_user_index, message_text,
                             visible_messages)
from ui.documents import DOCUMENT_TYPES, card_reader, is_document_name, read_upload
from ui.errors import Refusal, message_for, shown_to_user
from ui.i18n import lang_of, say, t
from ui.page import ChatView, Shared, chat_display, settings_dict, view_values
from ui import presets_panel
from ui.sessions_panel import Sidebar

PRIVATE = {"api_visibility": "private"}
# Refusals are toasts; a status tracker on the outputs would cover them with "Error" pills that block clicks.
QUIET = {"show_progress": "hidden", **PRIVATE}
GENERATE = {"concurrency_id": "generate", **QUIET}
TYPING = '<div class="typing" role="status"><span></span><span></span><span></span></div>'

BASE = "(base)"     # the Adapter dropdown's value for "no adapter" (never a valid adapter name)

@dataclass
class ChatControls:
    box: gr.MultimodalTextbox
    stop: gr.Button
    retry: gr.Button
    cont: gr.Button         # Continue: shown while the chat ends with a reply cut at the token limit
    edit: gr.Button
    cancel_edit: gr.Button
    editing: gr.State
    adapter: gr.Dropdown
    compare: gr.Button
    compare_base: gr.Textbox
    compare_adapter: gr.Textbox
    typing: gr.HTML
    presets: presets_panel.PresetBar     # saved system prompts + settings, in Settings
    versions: gr.HTML | None = None     # hidden: turns ‹ n/m › clicks into events (ui/chat_versions.py)


@contextmanager
def adapter_errors(lang: str) -> Iterator[None]:
    """An adapter that cannot be used (missing, another base, remote backend) -> its message as gr.Error."""
    try:
        yield
    except AdapterError as exc:
        title = "어댑터" if lang == "ko" else "Adapter"
        raise gr.Error(html.escape(str(exc), quote=False), title=title, print_exception=False) from None


def adapter_name(value: Any) -> str | None:
    """Dropdown value -> adapter name, or None for the base model."""
    return value if isinstance(value, str) and value and value != BASE else None


def adapter_choices(services: Any, lang: str, current: Any) -> list[tuple[str, str]]:
    """The Adapter choices as they are now: the base, every adapter made for this base model, and the
    chat's own choice even when it is gone (marked), so the user sees what the chat asks for."""
    name = adapter_name(current)
    choices = [(say(lang, "base_model_choice"), BASE)]
    for info in services.adapter_choices():
        m = info.meta
        choices.append((say(lang, "adapter_choice", name=info.name, method=m.get("method", "?"), r=m.get("r", "?"),
                            steps=m.get("steps", "?")), info.name))
    if name and all(value != name for _, value in choices):
        choices.append((f"⚠️ {name} ({say(lang, 'adapter_missing')})", name))
    return choices


def adapter_dropdown(services: Any, lang: str, current: Any) -> gr.Dropdown:
    """An update of the Adapter dropdown (call it in handlers only: inside Blocks it would add a component)."""
    return gr.Dropdown(choices=adapter_choices(services, lang, current), value=adapter_name(current) or BASE)


def build(shared: Shared, bar: Sidebar) -> tuple[ChatView, ChatControls]:
    """The main column, next to the sidebar; returns the view (redrawn on session changes) and the controls."""
    defaults = shared.services.default_settings()
    limits = shared.services.cfg.generation
    chatbot = gr.Chatbot(label=t("chat.chatbot"), elem_id="chatbot", height=520, editable="user",
                         buttons=["copy", "copy_all"], feedback_options=None, placeholder=t("chat.empty_hint"))
    typing = gr.HTML("", elem_id="typing", padding=False)
    version_nav = chat_versions.build()
    box = gr.MultimodalTextbox(placeholder=t("chat.input_ph"), label=t("chat.message"), show_label=False, file_types=["image", *DOCUMENT_TYPES],
                               file_count="single", sources=["upload"], elem_id="chat-input",
                               max_plain_text_length=limits.max_message_chars, submit_btn=True, stop_btn=False)
    editing = gr.State(False)
    with gr.Row(elem_id="reply-actions"):
        stop = gr.Button(t("chat.stop"), elem_id="stop", size="sm", variant="secondary")  # red while generating
        retry = gr.Button(t("chat.retry"), elem_id="retry", size="sm")
        cont = gr.Button(t("chat.continue"), elem_id="continue", size="sm", visible=False)
        edit = gr.Button(t("chat.edit"), elem_id="edit-last", size="sm")
        cancel_edit = gr.Button(t("chat.edit_cancel"), elem_id="edit-cancel", size="sm", visible=False)
    gr.Markdown(t("chat.queue_note"), elem_classes=["small-note"])
    with gr.Accordion(t("chat.settings"), open=False, elem_id="chat-settings"):
        presets = presets_panel.build()
        system_prompt = gr.Textbox(label=t("chat.system_prompt"), placeholder=t("chat.system_prompt_ph"), lines=2,
                                   value=defaults["system_prompt"], elem_id="system-prompt")
        temperature = gr.Slider(0.0, 2.0, value=defaults["temperature"], step=0.05, label=t("chat.temperature"),
                                elem_id="temperature")
        max_new_tokens = gr.Slider(1, max(limits.max_new_tokens, 4096), value=defaults["max_new_tokens"], step=1,
                                   label=t("chat.max_new_tokens"), elem_id="max-new-tokens")
        top_p = gr.Slider(0.01, 1.0, value=defaults["top_p"], step=0.01, label=t("chat.top_p"), elem_id="top-p")
        history_turns = gr.Slider(1, max(limits.max_history_turns, 50), value=defaults["history_turns"], step=1,
                                  label=t("chat.history_turns"), info=t("chat.history_turns_info"),
                                  elem_id="history-turns")
        seed = gr.Number(value=None, precision=0, label=t("chat.seed"), info=t("chat.seed_info"), elem_id="seed")
        presence_penalty = gr.Slider(-2.0, 2.0, value=defaults["presence_penalty"], step=0.1,
                                     label=t("chat.presence_penalty"), info=t("chat.penalty_info"),
                                     elem_id="presence-penalty")
        frequency_penalty = gr.Slider(-2.0, 2.0, value=defaults["frequency_penalty"], step=0.1,
                                      label=t("chat.frequency_penalty"), elem_id="frequency-penalty")
        top_k = gr.Slider(0, 200, value=defaults["top_k"], step=1, label=t("chat.top_k"), info=t("chat.top_k_info"),
                          elem_id="top-k")
        repetition_penalty = gr.Slider(0.5, 2.0, value=defaults["repetition_penalty"], step=0.05,
                                       label=t("chat.repetition_penalty"), info=t("chat.repetition_penalty_info"),
                                       elem_id="repetition-penalty")
        adapter = gr.Dropdown(choices=adapter_choices(shared.services, "en", None), value=BASE, label=t("chat.adapter"),
                              info=t("chat.adapter_info"), elem_id="chat-adapter", interactive=True)
    with gr.Accordion(t("chat.compare_title"), open=False, elem_id="chat-compare",
                      visible=shared.services.adapters is not None):
        gr.Markdown(t("chat.compare_note"), elem_classes=["small-note"])
        compare = gr.Button(t("chat.compare_run"), elem_id="compare-run", size="sm")
        with gr.Row():
            compare_base = gr.Textbox(label=t("chat.compare_base"), lines=6, max_lines=20, interactive=False,
                                      elem_id="compare-base")
            compare_adapter = gr.Textbox(label=t("chat.compare_adapter"), lines=6, max_lines=20, interactive=False,
                                         elem_id="compare-adapter")
    session_id = gr.BrowserState("", storage_key="localchat.session", secret=shared.secret)
    version = gr.State(None)
    shown = dict(system_prompt=system_prompt, temperature=temperature, max_new_tokens=max_new_tokens, top_p=top_p,
                 history_turns=history_turns, seed=seed, presence_penalty=presence_penalty,
                 frequency_penalty=frequency_penalty, top_k=top_k, repetition_penalty=repetition_penalty)
    view = ChatView(chatbot, session_id, version, bar.session_list, bar.search, {k: shown[k] for k in SETTING_KEYS})
    return view, ChatControls(box, stop, retry, cont, edit, cancel_edit, editing, adapter, compare, compare_base,
                              compare_adapter, typing, presets, versions=version_nav)


class ChatHandlers:
    """Handlers bound to the shared services; everything per user comes in as Gradio state."""

    def __init__(self, shared: Shared):
        self.shared = shared
        self.convo = shared.convo

    def send(self, request: gr.Request, box: Any, token: Any, session_id: Any, version: Any, editing: Any,
             adapter: Any, *settings: Any) -> tuple:
        """Save the user's message (the reply follows in `reply`); clears the box and turns Send into Stop.
        While this page's reply is still being written a new message is refused (and stays in the box):
        saved then, it would never be answered."""
        box = box or {}
        files = box.get("files") or []
        path = files[0].get("path") if files and isinstance(files[0], dict) else (files[0] if files else None)
        lang = lang_of(request)
        with shown_to_user(lang), adapter_errors(lang):
            owner = self.shared.owner(request, token)
            if self.convo.cancels.running(request.session_hash or ""):
                raise Refusal("reply_running")
            self.shared.services.models.check_open()    # "switching model…": refused before the message is saved
            if adapter_name(adapter) is not None:       # refused before the message is saved
                self.shared.services.check_adapter(adapter_name(adapter))
            if path and is_document_name(path):          # a bad document: refused before a chat is made for it
                read_upload(self.shared.services, path)
            session = self.convo.add_user(owner, session_id or None, box.get("text") or "", image_path=path,
                                          settings=settings_dict(*settings),
                                          edit=bool(editing), expected_version=version if editing else None)
            session = self._keep_adapter(owner, session, adapter)
            self.convo.cancels.hold(request.session_hash or "")   # busy until the reply ends (see _generate)
            return (gr.MultimodalTextbox(value=None, submit_btn=False, stop_btn=True), False,
                    gr.Button(visible=False), TYPING, gr.Button(variant="stop"),
                    *view_values(self.shared, owner, session, request))

    def _keep_adapter(self, owner: str, session: dict, value: Any) -> dict:
        """Store the chat's adapter (settings["adapter"]; removed for the base) when it changed. The caller has
        checked it (before anything of the event is stored); the reply's door checks it again at use."""
        name = adapter_name(value)
        if name == adapter_name(session["settings"].get("adapter")):
            return session
        return self.shared.services.store.update_settings(owner, session["id"], {"adapter": name})

    def reply(self, token: Any, session_id: Any, request: gr.Request) -> Iterator[tuple]:
        yield from self._generate(token, session_id, None, request, replace=False)

    def _again(self, request: gr.Request, token: Any, session_id: Any, adapter: Any, settings: tuple,
               nothing: str, possible: Callable[[list], bool] = lambda messages: True) -> dict:
        """What Retry and Continue share before they generate: the owner, nothing running, a chat whose messages
        allow it (else Refusal(`nothing`)), the adapter checked, then the settings shown saved with it."""
        owner = self.shared.owner(request, token)
        if self.convo.cancels.running(request.session_hash or ""):
            raise Refusal("reply_running")
        if not session_id:
            raise Refusal(nothing)
        if adapter_name(adapter) is not None:       # refused before the settings are saved
            self.shared.services.check_adapter(adapter_name(adapter))
        session = self.shared.services.store.get(owner, session_id)
        if not possible(session["messages"]):
            raise Refusal(nothing)
        session = self.convo.save_settings(owner, session, settings_dict(*settings))
        return self._keep_adapter(owner, session, adapter)

    def retry(self, request: gr.Request, token: Any, session_id: Any, version: Any, adapter: Any,
              *settings: Any) -> Iterator[tuple]:
        """Regenerate the last reply (with the settings shown now); the new reply replaces the old one."""
        lang = lang_of(request)
        with shown_to_user(lang), adapter_errors(lang):
            session = self._again(request, token, session_id, adapter, settings, "nothing_to_retry")
        yield from self._generate(token, session_id, session["version"], request, replace=True)

    def continue_reply(self, request: gr.Request, token: Any, session_id: Any, version: Any, adapter: Any,
                       *settings: Any) -> Iterator[tuple]:
        """Go on with the last reply, cut at the token limit (with the settings shown now): the same bubble
        grows, and the reply is stored as one message (old text + new)."""
        lang = lang_of(request)
        with shown_to_user(lang), adapter_errors(lang):
            session = self._again(request, token, session_id, adapter, settings, "nothing_to_continue",
                                  possible=continuable)
        yield from self._generate(token, session_id, session["version"], request, replace=False, extend=True)

    def continue_view(self, token: Any, session_id: Any, request: gr.Request) -> Any:
        """Continue for the chat shown now: visible while it ends with a reply cut at the token limit (and the
        chat model runs here: a remote backend cannot continue a reply)."""
        shown = False
        if session_id and not getattr(self.shared.services.engine, "remote", False):
            with shown_to_user(lang_of(request)):
                owner = self.shared.owner(request, token)
                try:
                    shown = continuable(self.shared.services.store.get(owner, session_id)["messages"])
                except Exception as exc:  # noqa: BLE001 - a chat deleted meanwhile offers nothing
                    if message_for(exc, lang_of(request)) is None:
                        raise
        return gr.Button(visible=shown)

    def _generate(self, token: Any, session_id: Any, version: Any, request: gr.Request,
                  replace: bool, extend: bool = False) -> Iterator[tuple]:
        lang = lang_of(request)
        key = request.session_hash or ""
        cancel = self.convo.cancels.start(key)
        try:
            with shown_to_user(lang), adapter_errors(lang):
                owner = self.shared.owner(request, token)
                if not session_id:
                    raise gr.Error(say(lang, "nothing_to_retry"))
                # the chat's adapter is one of its settings (settings["adapter"]): start_reply asks for it
                job = self.convo.start_reply(owner, session_id, cancel, replace=replace, extend=extend,
                                             expected_version=version)
            base = self._base(job, owner, lang)
            yield from self._stream(job, base)
            with shown_to_user(lang):
                session = job.save()
            yield chat_display(self.shared, owner, session, lang), session["version"]
            if job.error is not None:
                raise gr.Error(message_for(job.error, lang) or str(job.error), print_exception=False)
        finally:
            self.convo.cancels.finish(key, cancel)

    def _base(self, job: ReplyJob, owner: str, lang: str) -> list[dict]:
        messages = job.session["messages"]
        if job.replace and messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        return chat_display(self.shared, owner, {**job.session, "messages": messages}, lang)

    @staticmethod
    def _stream(job: ReplyJob, base: list[dict]) -> Iterator[tuple]:
        try:
            for text in job:
                yield base + [{"role": "assistant", "content": text or "…"}], gr.skip()
        except GeneratorExit:  # the page went away: stop the model, keep what was said
            job.close()
            try:
                job.save()
            except Exception:  # noqa: BLE001 - nobody is left to tell; the user message is already saved
                pass
            raise

    def idle(self, request: gr.Request) -> tuple:
        """After a sent message's reply, however it ended: the page may send again, Send is back, the dots go.
        A reply that never started (the queue was full) leaves its message's busy mark: dropped here."""
        return self._idle_view(self.convo.cancels.release(request.session_hash or ""))

    def settle(self, request: gr.Request) -> tuple:
        """After Retry, Continue or Compare: as `idle`, but a busy mark is never dropped. One of them refused while
        the page's sent message still waits in the queue would otherwise show Send (and accept another message)
        before that reply has begun."""
        return self._idle_view(not self.convo.cancels.running(request.session_hash or ""))

    @staticmethod
    def _idle_view(nothing_runs: bool) -> tuple:
        if not nothing_runs:            # another reply of this page runs or waits: its own end turns Send back
            return gr.skip(), gr.skip(), gr.skip()
        return gr.MultimodalTextbox(submit_btn=True, stop_btn=False), "", gr.Button(variant="secondary")

    def stop(self, request: gr.Request) -> None:
        """Set this page's cancel event: the engine ends at the next token and frees its slot."""
        self.convo.cancels.stop(request.session_hash or "")

    def edit_last(self, token: Any, session_id: Any, request: gr.Request) -> tuple:
        lang = lang_of(request)
        with shown_to_user(lang):
            owner = self.shared.owner(request, token)
            session = self.convo.open(owner, session_id or None) if session_id else None
            users = [m for m in (session or {}).get("messages", []) if m["role"] == "user"]
            if not users:
                raise gr.Error(say(lang, "nothing_to_edit"), print_exception=False)
            return gr.MultimodalTextbox(value={"text": users[-1]["content"], "files": []}), True, \
                gr.Button(visible=True)

    def edited(self, token: Any, session_id: Any, version: Any, evt: gr.EditData, request: gr.Request) -> tuple:
        """The Chatbot's own edit (pencil on a user message): keep what came before, resend the new text."""
        with shown_to_user(lang_of(request)):
            owner = self.shared.owner(request, token)
            session = self.shared.services.store.get(owner, session_id)
            index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            shown = visible_messages(session["messages"])
            if not 0 <= int(index) < len(shown):
                raise gr.Error(say(lang_of(request), "nothing_to_edit"), print_exception=False)
            stored_index, _ = shown[int(index)]
            session = self.convo.replace_user(owner, session, stored_index, message_text(evt.value),
                                              expected_version=version)
            return view_values(self.shared, owner, session, request)

    def save_settings(self, request: gr.Request, token: Any, session_id: Any, *settings: Any) -> Any:
        """Settings belong to the chat: saved as soon as they change."""
        if not session_id:
            return gr.skip()
        with shown_to_user(lang_of(request)):
            owner = self.shared.owner(request, token)
            session = self.shared.services.store.get(owner, session_id)
            session = self.convo.save_settings(owner, session, settings_dict(*settings))
            return session["version"]


    # ------------------------------------------------------------ adapters
    def adapter_view(self, token: Any, session_id: Any, request: gr.Request) -> Any:
        """The Adapter dropdown for the chat shown now: fresh choices, the chat's stored adapter."""
        lang = lang_of(request)
        stored = None
        if session_id:
            with shown_to_user(lang):
                owner = self.shared.owner(request, token)
                try:
                    stored = self.shared.services.store.get(owner, session_id)["settings"].get("adapter")
                except Exception as exc:  # noqa: BLE001 - a chat deleted meanwhile shows the base
                    if message_for(exc, lang) is None:
                        raise
        return adapter_dropdown(self.shared.services, lang, stored)

    def adapter_refresh(self, current: Any, request: gr.Request) -> Any:
        """Opening the dropdown reads the adapters again (a run may have just finished)."""
        return adapter_dropdown(self.shared.services, lang_of(request), current)

    def save_adapter(self, token: Any, session_id: Any, adapter: Any, request: gr.Request) -> Any:
        """The adapter belongs to the chat: checked, then saved as soon as it is picked."""
        lang = lang_of(request)
        with shown_to_user(lang), adapter_errors(lang):
            name = adapter_name(adapter)
            if name is not None:
                self.shared.services.check_adapter(name)
            if not session_id:
                return gr.skip()        # no chat yet: `send` stores it with the first message
            owner = self.shared.owner(request, token)
            session = self._keep_adapter(owner, self.shared.services.store.get(owner, session_id), adapter)
            return session["version"]

    def compare(self, token: Any, session_id: Any, adapter: Any, request: gr.Request) -> Iterator[tuple]:
        """The last user message (with the conversation before it) through the base, then the adapter,
        greedy, streamed side by side; nothing is saved. Stop ends it. While a reply of this page is being
        written it is refused (a notice): Stop must reach that reply, and Stop turns grey when it ends."""
        lang = lang_of(request)
        services = self.shared.services
        key = request.session_hash or ""
        with shown_to_user(lang), adapter_errors(lang):
            if self.convo.cancels.running(key):
                raise Refusal("compare_reply_running")
            name = adapter_name(adapter)
            if name is None:
                raise gr.Error(say(lang, "compare_pick"), print_exception=False)
            owner = self.shared.owner(request, token)
            if not session_id:
                raise Refusal("nothing_to_retry")
            session = services.store.get(owner, session_id)
            index = last_user_index(session["messages"])
            if index is None:
                raise Refusal("nothing_to_retry")
            services.check_adapter(name)
            settings = {**self.convo.settings(session), "temperature": 0.0}
            history = engine_messages(session["messages"][: index + 1], settings["system_prompt"],
                                      card_reader(services.store, owner))
        texts = ["", ""]
        for side, which in ((0, None), (1, name)):
            cancel = self.convo.cancels.start(key)     # one event per stream: the engine sets it when done
            try:
                with shown_to_user(lang), adapter_errors(lang):
                    gen = services.reply(history, {**settings, "adapter": which}, cancel)
                last = 0.0
                try:
                    for piece in gen.stream:
                        texts[side] += piece
                        if time.monotonic() - last >= STREAM_INTERVAL:
                            last = time.monotonic()
                            yield texts[0], texts[1] or "…"
                finally:
                    gen.stream.close()
            finally:
                self.convo.cancels.finish(key, cancel)
            if gen.stream.stats.finish_reason == "cancelled":    # Stop pressed: the adapter side does not start
                break
        yield texts[0], texts[1]


def wire(shared: Shared, view: ChatView, c: ChatControls, owner_token: gr.BrowserState) -> None:
    h = ChatHandlers(shared)
    if c.versions is not None:
        chat_versions.wire(shared, view, c.versions, owner_token)
    settings = view.settings_inputs()
    send_inputs = [c.box, owner_token, view.session_id, view.version, c.editing, c.adapter, *settings]
    send_outputs = [c.box, c.editing, c.cancel_edit, c.typing, c.stop, *view.outputs()]
    reply_outputs = [view.chatbot, view.version]
    # Whatever way a reply ends (done, stopped, refused, failed), Send comes back and the dots go.
    idle = (h.idle, None, [c.box, c.typing, c.stop])
    settle = (h.settle, None, [c.box, c.typing, c.stop])      # after Retry, Continue, Compare (see settle)
    c.box.submit(h.send, send_inputs, send_outputs, **QUIET) \
        .success(h.reply, [owner_token, view.session_id], reply_outputs, **GENERATE) \
        .then(*idle, queue=False, **QUIET)
    for stop in (c.stop.click, c.box.stop):
        stop(h.stop, None, None, queue=False, **QUIET)
    retry_inputs = [owner_token, view.session_id, view.version, c.adapter, *settings]
    busy = (lambda: (gr.MultimodalTextbox(submit_btn=False, stop_btn=True), TYPING, gr.Button(variant="stop")), None,
            [c.box, c.typing, c.stop])
    for trigger in (c.retry.click, view.chatbot.retry):
        trigger(*busy, queue=False, **QUIET).then(h.retry, retry_inputs, reply_outputs, **GENERATE) \
            .then(*settle, queue=False, **QUIET)
    c.cont.click(*busy, queue=False, **QUIET).then(h.continue_reply, retry_inputs, reply_outputs, **GENERATE) \
        .then(*settle, queue=False, **QUIET)
    c.edit.click(h.edit_last, [owner_token, view.session_id], [c.box, c.editing, c.cancel_edit], **QUIET)
    c.cancel_edit.click(lambda: (gr.MultimodalTextbox(value=None), False, gr.Button(visible=False)), None,
                        [c.box, c.editing, c.cancel_edit], **QUIET)
    view.chatbot.edit(h.edited, [owner_token, view.session_id, view.version], view.outputs(), **QUIET) \
        .success(*busy, queue=False, **QUIET) \
        .then(h.reply, [owner_token, view.session_id], reply_outputs, **GENERATE).then(*idle, queue=False, **QUIET)
    for key, control in view.settings.items():
        if key == "system_prompt":
            continue
        control.input(h.save_settings, [owner_token, view.session_id, *settings], view.version,
                      trigger_mode="always_last", **QUIET)
    view.settings["system_prompt"].blur(h.save_settings, [owner_token, view.session_id, *settings], view.version, **QUIET)
    # The Adapter choice follows the chat shown (opened, switched, replied to) and re-reads the adapters
    # when opened; picking one saves it in the chat.
    # Another chat shown (opened, new, deleted): an edit begun in the chat before ends there.
    view.session_id.change(lambda: (False, gr.Button(visible=False)), None, [c.editing, c.cancel_edit], queue=False,
                           **QUIET)
    for trigger in (view.session_id.change, view.version.change):
        trigger(h.adapter_view, [owner_token, view.session_id], c.adapter, queue=False,
                trigger_mode="always_last", **QUIET)
        # Continue follows the chat shown: offered while its last reply was cut at the token limit
        trigger(h.continue_view, [owner_token, view.session_id], c.cont, queue=False,
                trigger_mode="always_last", **QUIET)
    c.adapter.focus(h.adapter_refresh, c.adapter, c.adapter, queue=False, **QUIET)
    c.adapter.input(h.save_adapter, [owner_token, view.session_id, c.adapter], view.version, **QUIET)
    presets_panel.wire(shared, c.presets, view, owner_token)
    # Stop reaches a compare too: red while it runs, grey after it (by the step that ends a reply)
    comparing = (lambda: (gr.MultimodalTextbox(submit_btn=False, stop_btn=True), gr.Button(variant="stop")), None,
                 [c.box, c.stop])
    c.compare.click(*comparing, queue=False, **QUIET) \
        .then(h.compare, [owner_token, view.session_id, c.adapter], [c.compare_base, c.compare_adapter], **GENERATE) \
        .then(*settle, queue=False, **QUIET)
