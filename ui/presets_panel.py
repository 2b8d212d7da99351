"""Presets in the chat's Settings: pick one (its system prompt and settings become this chat's), save the settings
shown as a new one, rename or delete the one picked. Kept per owner by sessions.PresetStore; the result line under
the controls says what happened or, in one sentence, why not."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.chat_format import SETTING_KEYS, settings_from
from ui.errors import Refusal, refusal_line
from ui.i18n import lang_of, say, t
from ui.page import ChatView, Shared, settings_dict

PRIVATE = {"api_visibility": "private"}
QUIET = {"show_progress": "hidden", **PRIVATE}


@dataclass
class PresetBar:
    pick: gr.Dropdown           # choices: (name, preset id)
    name: gr.Textbox            # the name for Save and Rename
    save: gr.Button
    rename: gr.Button
    delete: gr.Button
    note: gr.Markdown           # one line: done, or why not


def build() -> PresetBar:
    """Inside the chat's Settings, above the settings a preset sets."""
    with gr.Group(elem_id="presets"):
        pick = gr.Dropdown(choices=[], value=None, label=t("presets.pick"), info=t("presets.pick_info"),
                           interactive=True, elem_id="preset-pick")
        name = gr.Textbox(label=t("presets.name"), placeholder=t("presets.name_ph"), max_lines=1,
                          elem_id="preset-name")
        with gr.Row():
            save = gr.Button(t("presets.save"), size="sm", elem_id="preset-save")
            rename = gr.Button(t("presets.rename"), size="sm", elem_id="preset-rename")
            delete = gr.Button(t("presets.delete"), size="sm", elem_id="preset-delete")
        note = gr.Markdown("", elem_id="preset-note")
    return PresetBar(pick, name, save, rename, delete, note)


def preset_values(settings: dict) -> dict:
    """What a preset keeps of a chat's settings: the ones the Settings panel shows (never the adapter)."""
    return {k: settings.get(k) for k in SETTING_KEYS}


def done(lang: str, key: str, name: str) -> str:
    return html.escape(say(lang, key, name=name), quote=False)


class PresetHandlers:
    def __init__(self, shared: Shared):
        self.shared = shared

    @property
    def presets(self) -> Any:
        return self.shared.services.presets

    def _dropdown(self, owner: str, value: Any) -> Any:
        choices = [(p["name"], p["id"]) for p in self.presets.list(owner)]
        return gr.Dropdown(choices=choices, value=value if any(v == value for _, v in choices) else None)

    def refresh(self, token: Any, value: Any, request: gr.Request) -> tuple:
        """The owner's presets as they are now (another tab may have changed them)."""
        try:
            return self._dropdown(self.shared.owner(request, token), value), gr.skip()
        except Exception as exc:  # noqa: BLE001 - known failures become the line, bugs are raised again
            return gr.skip(), refusal_line(exc, lang_of(request))

    def cleared(self, token: Any, request: gr.Request) -> tuple:
        """Another chat shown: nothing is picked for it yet. While the page has no owner key yet (its first chat is
        shown as it loads) there is nothing to read and nothing to say; any other refusal is the line."""
        if not token and not self.shared.owners.auth:
            return gr.Dropdown(value=None), gr.skip()
        return self.refresh(token, None, request)

    def apply(self, request: gr.Request, token: Any, session_id: Any, preset_id: Any, *shown: Any) -> tuple:
        """The picked preset's settings over the ones shown, saved in the chat (a new chat keeps them with its
        first message, as it keeps any setting)."""
        lang = lang_of(request)
        skip = [gr.skip()] * (len(SETTING_KEYS) + 1)
        try:
            owner = self.shared.owner(request, token)
            if not preset_id:
                return (*skip, "")
            preset = self.presets.get(owner, preset_id)
            settings = settings_from(preset["settings"], settings_dict(*shown))
            version: Any = gr.skip()
            if session_id:
                store = self.shared.services.store
                version = self.shared.convo.save_settings(owner, store.get(owner, session_id), settings)["version"]
        except Exception as exc:  # noqa: BLE001
            return (*skip, refusal_line(exc, lang))
        return (*[settings[k] for k in SETTING_KEYS], version, done(lang, "preset_applied", preset["name"]))

    def save(self, request: gr.Request, token: Any, name: Any, *shown: Any) -> tuple:
        """The settings shown, kept as a new preset under `name` (then picked, without applying anything)."""
        lang = lang_of(request)
        try:
            owner = self.shared.owner(request, token)
            preset = self.presets.create(owner, name, preset_values(settings_dict(*shown)))
            return self._dropdown(owner, preset["id"]), "", done(lang, "preset_saved", preset["name"])
        except Exception as exc:  # noqa: BLE001
            return gr.skip(), gr.skip(), refusal_line(exc, lang)

    def rename(self, token: Any, preset_id: Any, name: Any, request: gr.Request) -> tuple:
        lang = lang_of(request)
        try:
            owner = self.shared.owner(request, token)
            if not preset_id:
                raise Refusal("preset_pick_first")
            preset = self.presets.rename(owner, preset_id, name)
            return self._dropdown(owner, preset["id"]), "", done(lang, "preset_renamed", preset["name"])
        except Exception as exc:  # noqa: BLE001
            return gr.skip(), gr.skip(), refusal_line(exc, lang)

    def delete(self, token: Any, preset_id: Any, request: gr.Request) -> tuple:
        lang = lang_of(request)
        try:
            owner = self.shared.owner(request, token)
            if not preset_id:
                raise Refusal("preset_pick_first")
            name = self.presets.get(owner, preset_id)["name"]
            self.presets.delete(owner, preset_id)
            return self._dropdown(owner, None), done(lang, "preset_deleted", name)
        except Exception as exc:  # noqa: BLE001
            return gr.skip(), refusal_line(exc, lang)


def wire(shared: Shared, bar: PresetBar, view: ChatView, owner_token: Any) -> None:
    h = PresetHandlers(shared)
    settings = view.settings_inputs()
    # Opening the list reads the presets again; another chat shown starts with none picked.
    bar.pick.focus(h.refresh, [owner_token, bar.pick], [bar.pick, bar.note], queue=False, **QUIET)
    view.session_id.change(h.cleared, [owner_token], [bar.pick, bar.note], queue=False, **QUIET)
    bar.pick.input(h.apply, [owner_token, view.session_id, bar.pick, *settings], [*settings, view.version, bar.note],
                   **QUIET)
    bar.save.click(h.save, [owner_token, bar.name, *settings], [bar.pick, bar.name, bar.note], **QUIET)
    bar.rename.click(h.rename, [owner_token, bar.pick, bar.name], [bar.pick, bar.name, bar.note], **QUIET)
    bar.delete.click(h.delete, [owner_token, bar.pick], [bar.pick, bar.note], **QUIET)
