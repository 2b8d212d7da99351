"""Export and import from the chat list: this chat or all of the owner's, as JSON (everything, to import again)
or Markdown (to read); an uploaded JSON export is added beside the owner's chats, never over one. The store does
the work (SessionStore.export / import_json); this module is the page part and the one result line."""
from __future__ import annotations

import html
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sessions import ImportReport, decode_import
from ui.errors import Refusal, plain_detail, refusal_line
from ui.i18n import lang_of, say, t
from ui.page import Shared, list_html

PRIVATE = {"api_visibility": "private"}
QUIET = {"show_progress": "hidden", **PRIVATE}
EXPORT_DIR = Path(tempfile.gettempdir()) / "localchat-exports"
KEEP_EXPORTS_S = 600            # Gradio copies a returned file into its cache at once; ours go after 10 min
SUFFIX = {"json": ".json", "markdown": ".md"}
SHOWN_SKIPS = 3                 # reasons named in the result line; the rest are counted


@dataclass
class ExchangePanel:
    scope: gr.Radio             # "this" or "all"
    fmt: gr.Radio               # "json" or "markdown"
    export: gr.Button
    file: gr.File               # the export, to download
    upload: gr.UploadButton
    result: gr.Markdown         # one line: what the import did, or why nothing was done


def build() -> ExchangePanel:
    """Under the chat list, folded: it is used now and then."""
    with gr.Accordion(t("exchange.title"), open=False, elem_id="chat-exchange"):
        scope = gr.Radio([(t("exchange.this"), "this"), (t("exchange.all"), "all")], value="this",
                         label=t("exchange.scope"), elem_id="export-scope")
        fmt = gr.Radio([(t("exchange.json"), "json"), (t("exchange.markdown"), "markdown")], value="json",
                       label=t("exchange.format"), elem_id="export-format")
        export = gr.Button(t("exchange.export"), size="sm", elem_id="export-run")
        file = gr.File(label=t("exchange.file"), interactive=False, visible=False, elem_id="export-file")
        gr.Markdown(t("exchange.note"), elem_classes=["small-note"])
        # No file_types: Gradio would refuse other files with its own English line; ours says it in EN/KO.
        upload = gr.UploadButton(t("exchange.import"), size="sm", file_count="single", elem_id="import-chats")
        result = gr.Markdown("", elem_id="exchange-result")
    return ExchangePanel(scope, fmt, export, file, upload, result)


def file_stem(title: str) -> str:
    """A chat title as a file name: letters (Korean too) and digits kept, the rest one '-', 60 characters."""
    stem = re.sub(r"[^\w]+", "-", title, flags=re.UNICODE).strip("-_")[:60].strip("-_")
    return stem or "chat"


def write_export(text: str, name: str) -> str:
    """The export in a fresh folder of its own (an unguessable name), older ones removed."""
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    for old in EXPORT_DIR.iterdir():
        try:
            if time.time() - old.stat().st_mtime > KEEP_EXPORTS_S:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:
            continue
    folder = EXPORT_DIR / secrets.token_hex(16)
    folder.mkdir(mode=0o700)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def skip_reason(report: ImportReport, index: int, english: str, lang: str) -> str:
    """Why chat `index` was left out: the store's English reason, or its case's sentence in another language."""
    reason, values = report.why.get(index, ("invalid", {}))
    if lang == "en":
        return plain_detail(english)
    return say(lang, f"import_why_{reason}", **values)


def report_line(report: ImportReport, lang: str) -> str:
    """'3 chats imported. 1 skipped: chat 2: …' in the user's language (each skip's case from `report.why`;
    in English the store's own reason, which names the message or setting at fault)."""
    n = len(report.imported)
    line = say(lang, "import_done_one") if n == 1 else say(lang, "import_done", n=n)
    if report.skipped:
        reasons = [say(lang, "import_skip_one", index=i + 1, reason=skip_reason(report, i, r, lang)) for i, r in
                   report.skipped[:SHOWN_SKIPS]]
        more = " …" if len(report.skipped) > SHOWN_SKIPS else ""
        line += " " + say(lang, "import_skipped", n=len(report.skipped), reasons="; ".join(reasons) + more)
    return line


class ExchangeHandlers:
    def __init__(self, shared: Shared):
        self.shared = shared

    def export(self, token: Any, session_id: Any, scope: Any, fmt: Any, request: gr.Request) -> tuple:
        """Write this chat (or all) to a file and offer it for download; the result line says why not."""
        lang = lang_of(request)
        fmt = fmt if fmt in SUFFIX else "json"
        store = self.shared.services.store
        try:
            owner = self.shared.owner(request, token)
            if scope == "all":
                if not store.list(owner, limit=1):
                    raise Refusal("export_no_chats")
                text = store.export(owner, None, fmt)
                name = f"chats-{time.strftime('%Y-%m-%d')}{SUFFIX[fmt]}"
            else:
                if not session_id:      # a new chat is stored with its first message
                    raise Refusal("export_empty_chat")
                title = store.get(owner, session_id)["title"]
                text = store.export(owner, session_id, fmt)
                name = file_stem(title) + SUFFIX[fmt]
        except Exception as exc:  # noqa: BLE001 - known failures become the line, bugs are raised again
            return gr.File(value=None, visible=False), refusal_line(exc, lang)
        return gr.File(value=write_export(text, name), visible=True), ""

    def import_file(self, token: Any, upload: Any, current: Any, request: gr.Request) -> tuple:
        """Add the chats of an uploaded JSON export; the result line says how many, or why none."""
        lang = lang_of(request)
        store = self.shared.services.store
        limit = min(store.limits.max_import_bytes, self.shared.services.cfg.server.max_upload_mb * 2**20)
        try:
            owner = self.shared.owner(request, token)
            path = Path(upload if isinstance(upload, str) else getattr(upload, "path", "") or "")
            if not upload or not path.is_file():
                raise Refusal("import_nothing")
            if path.stat().st_size > limit:             # before reading it
                raise Refusal("import_too_large", limit_mb=max(1, limit // 2**20))
            report = store.import_json(owner, decode_import(path.read_bytes(), store.limits))
        except Exception as exc:  # noqa: BLE001 - known failures become the line, bugs are raised again
            return refusal_line(exc, lang), gr.skip()
        return html.escape(report_line(report, lang), quote=False), list_html(self.shared, owner, current or "", lang)


def wire(shared: Shared, panel: ExchangePanel, session_list: gr.HTML, session_id: Any, owner_token: Any) -> None:
    h = ExchangeHandlers(shared)
    panel.export.click(h.export, [owner_token, session_id, panel.scope, panel.fmt], [panel.file, panel.result],
                       **QUIET)
    panel.upload.upload(h.import_file, [owner_token, panel.upload, session_id], [panel.result, session_list],
                        **QUIET)
