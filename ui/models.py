"""Models tab: what is loaded, at which rung and why; switch the chat model now (engine/switching.py; also the
`switch_model` endpoint for scripts); load/unload image and speech models; the LoRA adapters
and whether the loaded base can use them; precision for the next start; GPU memory per precision rung for
any model, estimated from its config alone."""
from __future__ import annotations

import hmac
import json
import queue
import threading
from pathlib import Path
from typing import Any, Iterator

import gradio as gr

from config.files import atomic_write_text
from config import PRECISIONS, RUNGS, ConfigError, PrecisionError, check_precision, config_from_dict
from ui.errors import Refusal, message_for, shown_to_user
from ui.i18n import lang_of, say, t
from ui.page import Shared
from engine.prompting.codec import PATH_LABELS
from engine.loading.quality import read_quality, relative_costs
from engine.serving.batch_criterion import rung_batches

PRIVATE = {"api_visibility": "private"}
GiB = 1024 ** 3
CARDS_GIB = (8, 12, 16, 24)
OPTIONAL_MODELS = ("vision", "stt", "tts-ko", "tts-en")


def _gib(n: Any) -> str:
    return f"{n / GiB:.2f} GiB" if isinstance(n, (int, float)) else "—"


def concurrency_line(concurrency: Any, lang: str) -> str:
    """engine.max_concurrent as resolved at load: the number and, for auto, what it was sized from."""
    if not concurrency.auto:
        return say(lang, "concurrency_fixed", slots=concurrency.slots)
    if not concurrency.kv_bytes_per_token:
        return say(lang, "concurrency_remote", slots=concurrency.slots)
    return say(lang, "concurrency_auto", slots=concurrency.slots, budget=concurrency.kv_budget_bytes / 1e9,
               per_token=concurrency.kv_bytes_per_token / 1024, context=concurrency.context_tokens)


def ladder_line(precision: Any, lang: str, *, cuda: bool, cpu_dtype: str) -> str:
    """engine.precision as the rungs the loader tries, in order (the same preflight.ladder_for it uses)."""
    from engine.loading.preflight import ladder_for

    ladder = " → ".join(ladder_for(precision, cuda=cuda, cpu_dtype=cpu_dtype))
    return say(lang, "ladder_auto" if precision == "auto" else "ladder_set", ladder=ladder)


def config_error_text(exc: ConfigError, lang: str) -> str:
    """A refused setting in the user's language where ui/i18n has its sentence (engine.precision), else as is."""
    if isinstance(exc, PrecisionError):
        return say(lang, f"precision_{exc.problem}", shown=exc.shown, rungs=", ".join(RUNGS))
    return str(exc)


def report_markdown(report: Any, lang: str, concurrency: Any = None, ladder: str = "") -> str:
    """The chat model's LoadReport: model, rung, device, why, the configured ladder (`ladder_line`), the
    attempts down the ladder, how many at once."""
    ko = lang == "ko"
    blocks = []
    if report.demo:
        blocks.append(say(lang, "demo_banner" if getattr(report, "random_weights", True) else "offline_banner"))
    path = getattr(report, "prompt_path", "")
    blocks.append("\n".join([
        f"**{'채팅 모델' if ko else 'Chat model'}:** `{report.model_id}`",
    ] + ([f"- {say(lang, 'prompt_path', path=PATH_LABELS.get(path, path))}"] if path else []) + [
        f"- {'정밀도(rung)' if ko else 'Rung'}: **{report.rung}** · {'장치' if ko else 'device'} `{report.device}`",
        f"- {'이유' if ko else 'Why'}: {report.reason}",
    ] + ([f"- {ladder}"] if ladder else []) + [
        f"- {'메모리' if ko else 'Memory'}: GPU {_gib(report.gpu_bytes)}, CPU {_gib(report.cpu_bytes)} · "
        f"{'불러온 시간' if ko else 'loaded in'} {report.seconds:.1f} s",
    ] + ([f"- {concurrency_line(concurrency, lang)}"] if concurrency is not None else [])
      + ([f"- ℹ️ {report.notice}"] if report.notice else [])))
    if report.attempts:
        rows = ["| # | rung | " + ("결과" if ko else "outcome") + " | s |", "|---|---|---|---|"]
        rows += [f"| {i} | {a.rung} | {a.outcome} | {a.seconds:.1f} |" for i, a in enumerate(report.attempts, 1)]
        blocks.append("\n".join(rows))
    if report.rung != "remote":
        blocks.append(quality_markdown(report.model_id, lang))
    return "\n\n".join(blocks)


QUALITY_FILE = Path(__file__).resolve().parents[1] / "docs" / "quality.json"


def quality_markdown(model_id: str, lang: str, path: Path = QUALITY_FILE) -> str:
    """The measured cost of each rung for this model (written by `make bench`): memory and perplexity."""
    rows = read_quality(path, model_id)
    if not rows:
        return say(lang, "quality_none")
    ko = lang == "ko"
    head = ("| 정밀도 | 메모리 | perplexity | 요약 | 여러 사람이 함께 |" if ko
            else "| rung | memory | perplexity | in short | several people at once |")
    lines = [say(lang, "quality_title", model=f"`{model_id}`"), "", head, "|---|---|---|---|---|"]
    together = {True: say(lang, "rung_batches"), False: say(lang, "rung_takes_turns"), None: "?"}
    for row, mem, ppl in relative_costs(rows):
        short = (f"{mem:+.0f} % {'메모리' if ko else 'memory'}, {ppl:+.0f} % perplexity" if row is not rows[0]
                 else ("기준" if ko else "reference"))
        lines.append(f"| {row.rung} | {row.weight_bytes / 2**20:.0f} MiB | {row.perplexity:.2f} | {short} | "
                     f"{together[rung_batches(row.rung)]} |")
    return "\n".join(lines)


def states_markdown(states: list[dict], lang: str, available: bool, budget: dict | None = None,
                    events: list[str] | None = None) -> str:
    """ModelManager.state(): one row per model (chat, vision, stt, tts-ko, tts-en), then budget and events."""
    ko = lang == "ko"
    if not available:
        return say(lang, "unavailable", what="image/speech" if not ko else "이미지·음성",
                   detail="no model manager in this install" if not ko else "이 설치에는 모델 관리자가 없습니다")
    head = ("| 모델 | 상태 | 메모리 | 불러온 횟수 | 정보 |" if ko else "| model | state | memory | loads | details |")
    lines = [head, "|---|---|---|---|---|"]
    random_media = False
    for row in states:
        if row.get("loading"):
            state = "⏳ 불러오는 중" if ko else "⏳ loading"
        elif row.get("loaded"):
            state = ("✅ 사용 중" if ko else "✅ in use") if row.get("in_use") else ("✅ 대기" if ko else "✅ loaded")
        else:
            state = "— 안 불러옴" if ko else "— not loaded"
        size = _gib(row.get("bytes")) if row.get("loaded") else f"~{_gib(row.get('estimate_bytes'))}"
        info = row.get("error") or str(row.get("report") or "").split(": ", 1)[0]
        if row.get("demo"):
            info = "⚠️ demo · " + info
            random_media = random_media or row.get("name") != "chat"
        lines.append(f"| {row.get('name')} | {state} | {size} | {row.get('loads', 0)} | "
                     f"{str(info).replace('|', '/')[:300]} |")
    if random_media:
        lines += ["", say(lang, "media_random")]
    if budget:
        lines.append("")
        limit = _gib(budget["budget_bytes"]) if budget.get("budget_bytes") is not None else budget.get("mode")
        lines.append(f"{'예산' if ko else 'Budget'}: {limit} · {'사용' if ko else 'used'} {_gib(budget.get('used_bytes'))}"
                     f" · {'남은 자리' if ko else 'room'} {_gib(budget.get('room_bytes'))}")
    if events:
        lines += ["", "<sub>" + " · ".join(events[-6:]) + "</sub>"]
    return "\n".join(lines)


def adapters_markdown(services: Any, lang: str) -> str:
    """Every complete adapter in engine.adapters_dir: usable with the loaded base or not, and its summary."""
    registry = services.adapters
    if registry is None:
        return say(lang, "adapters_remote")
    found = registry.available()
    if not found:
        return say(lang, "adapters_none") + f" (`{registry.adapters_dir}`)"
    lines = [say(lang, "adapters_head"), "|---|---|---|---|"]
    for info in found:
        usable = say(lang, "adapters_yes") if info.compatible else say(lang, "adapters_no")
        try:
            summary = info.summary()
        except (KeyError, TypeError, ValueError):  # meta.json of an older format: still listed, by name
            summary = info.name
        created = str(info.meta.get("created", ""))[:16].replace("T", " ")
        cells = [f"`{info.name}`", usable, summary, created]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + f"\n\n<sub>{registry.adapters_dir}</sub>"


def read_model_config(model: str) -> Any:
    """transformers config of a folder, a demo model, or a hub id (offline: only from the local cache)."""
    from transformers import AutoConfig

    model = model.strip()
    if model.startswith("demo"):
        from engine.loading.sources import resolve_source

        return AutoConfig.from_pretrained(str(resolve_source(model).folder), trust_remote_code=False)
    if Path(model).expanduser().is_dir():
        return AutoConfig.from_pretrained(str(Path(model).expanduser()), trust_remote_code=False)
    try:
        return AutoConfig.from_pretrained(model, trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError):
        from engine.loading.sources import hub_reachable

        if not hub_reachable():     # decided at once: no minute of retries per click
            raise OSError(f"{model} is not in the local cache and the Hugging Face hub cannot be reached") from None
        return AutoConfig.from_pretrained(model, trust_remote_code=False)


def estimate_markdown(shared: Shared, model: str, lang: str) -> str:
    """Needed GPU memory at each rung, against common card sizes and this machine's GPU."""
    from engine.monitor import read_gpus
    from engine.loading.preflight import RUNGS, estimate_rungs

    ko = lang == "ko"
    model = (model or "").strip() or shared.services.cfg.engine.model
    try:
        config = read_model_config(model)
        cfg = shared.services.cfg.engine
        gpus, _ = read_gpus()
        cards = [(f"{c} GB", c * GiB) for c in CARDS_GIB]
        if cfg.max_gpu_memory is not None:
            cards.append(("engine.max_gpu_memory", int(cfg.max_gpu_memory * GiB)))
        elif gpus:
            cards.append((("이 GPU (남은)" if ko else "this GPU (free)"), gpus[0].memory_free))
        table = {label: estimate_rungs(config, budget_bytes=budget, context_tokens=cfg.max_context,
                                       headroom=cfg.kv_headroom) for label, budget in cards}
    except Exception as exc:  # noqa: BLE001 - any unreadable config is reported, never raised as a bug
        return say(lang, "unknown_model", model=model, detail=str(exc).splitlines()[0][:200])
    first = next(iter(table.values()))
    lines = [f"**{model}** · {'문맥' if ko else 'context'} {cfg.max_context} tokens · headroom {cfg.kv_headroom:.0%}",
             "", "| rung | " + ("가중치" if ko else "weights") + " | KV cache | "
             + " | ".join(label for label, _ in cards) + " |", "|---|---|---|" + "---|" * len(cards)]
    for i, rung in enumerate(RUNGS):
        e = first[i]
        cells = [f"{'✅' if table[label][i].fits else '❌'} {table[label][i].needed_bytes / GiB:.1f}" for label, _ in cards]
        lines.append(f"| {rung} | {e.weight_bytes / GiB:.2f} GiB | {e.kv_cache_bytes / GiB:.2f} GiB | "
                     + " | ".join(cells) + " |")
    lines.append("\n" + ("✅ = 들어감, 숫자 = 필요한 GiB (가중치 + KV 캐시 + 여유분). 4bit-offload 는 나머지를 CPU 메모리에 둡니다."
                         if ko else "✅ = fits, number = GiB needed (weights + KV cache + headroom). "
                         "4bit-offload spills the rest into CPU memory."))
    return "\n".join(lines)


def save_precision(config_path: str, precision: str) -> None:
    """Write engine.precision into the config file (atomically); checked like any config before writing
    (an unknown rung raises config.PrecisionError before the file is read)."""
    config_from_dict({"engine": {"precision": precision}})
    path = Path(config_path)
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data.setdefault("engine", {})["precision"] = precision
    config_from_dict(data)
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def may_change(services: Any, request: gr.Request | None) -> None:
    """The settings rule: beyond this machine without a login, settings are read-only (Refusal
    "settings_locked"), except for a script that sends the API key (`Authorization: Bearer <key>`)."""
    if not services.public:
        return
    header = (request.headers.get("authorization") or "") if request is not None else ""
    scheme, _, given = header.partition(" ")
    key = services.api_key
    if key and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode()):
        return
    raise Refusal("settings_locked")


def switch_precision(value: Any, lang: str) -> str | list[str]:
    """The precision a switch asks for: "auto", one rung, or rungs separated by commas ("fp16,4bit") to try
    in that order; "" is engine.precision as configured. A PrecisionError becomes the user's sentence."""
    text = str(value or "").strip()
    if not text:
        return ""
    rungs = [r.strip() for r in text.replace("→", ",").split(",") if r.strip()]
    try:
        checked = check_precision(rungs if len(rungs) > 1 else text)
    except PrecisionError as exc:
        raise gr.Error(config_error_text(exc, lang), print_exception=False) from None
    return checked if isinstance(checked, str) else list(checked)


def run_switch(services: Any, model: str, precision: str | list[str]) -> Iterator[str]:
    """Switch the chat model in a thread of its own (a page closed mid-switch does not stop it); yield each
    progress line as it is said (also printed on the terminal, as at start); raise what the switch raised."""
    lines: queue.Queue[str | None] = queue.Queue()
    failed: list[BaseException] = []

    def say(line: str) -> None:
        print(f"[switch] {line}", flush=True)
        lines.put(line)

    def work() -> None:
        try:
            services.models.switch(model, precision or None, say=say)
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, which shows or raises it
            failed.append(exc)
        finally:
            lines.put(None)

    threading.Thread(target=work, daemon=True, name="switch-model").start()
    while (line := lines.get()) is not None:
        yield line
    if failed:
        raise failed[0]


class SwitchEndpoint:
    """The `switch_model` named endpoint (registered by ui/endpoints.py) for scripts."""

    def __init__(self, shared: Shared):
        self.shared = shared

    def switch_model(self, model: str, precision: str = "", request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """Load another chat model now: `model` is a local folder, a .gguf file, a hub id or "demo"; `precision`
        "auto", a rung or rungs to try in order ("fp16,4bit"); "" is engine.precision. Replies in progress
        finish first; returns {model, rung, device, seconds, lines}. A model that cannot be loaded is refused in
        one line and the previous model keeps serving."""
        lang = lang_of(request)
        services = self.shared.services
        with shown_to_user(lang):
            may_change(services, request)
            lines = list(run_switch(services, str(model or ""), switch_precision(precision, lang)))
        report = services.engine.report
        return {"model": report.model_id, "rung": report.rung, "device": report.device,
                "seconds": round(float(report.seconds), 2), "lines": lines}


class ModelsHandlers:
    def __init__(self, shared: Shared):
        self.shared = shared

    def switch(self, model: Any, precision: Any, request: gr.Request) -> Iterator[tuple]:
        """The Models tab's switch: the progress lines as they come, then the tab redrawn for the new model
        (or, when it failed, the one sentence why; the previous model still serves)."""
        lang = lang_of(request)
        services = self.shared.services
        log: list[str] = []
        keep = (gr.skip(),) * 3
        with shown_to_user(lang):
            may_change(services, request)
            ask = switch_precision(precision, lang)
            try:
                for line in run_switch(services, str(model or ""), ask):
                    log.append(line)
                    yield ("\n".join(log), *keep)
            except Exception as exc:  # noqa: BLE001 - shown under the log, then raised as the toast
                text = message_for(exc, lang)
                if text is None:
                    raise
                log.append(f"❌ {text}")
                yield ("\n".join(log), *self.overview(request))
                raise
        report = services.engine.report
        log.append("✅ " + say(lang, "switch_done", model=report.model_id, rung=report.rung, seconds=report.seconds))
        yield ("\n".join(log), *self.overview(request))

    def overview(self, request: gr.Request) -> tuple[str, str, str]:
        lang = lang_of(request)
        services = self.shared.services
        manager = services.manager
        with shown_to_user(lang):
            states = services.model_states()
            budget = manager.budget() if manager is not None else None
            events = manager.events() if manager is not None else None
        report, engine_cfg = services.engine.report, services.cfg.engine
        ladder = "" if report.rung == "remote" else ladder_line(
            engine_cfg.precision, lang, cuda=str(report.device).startswith("cuda"), cpu_dtype=engine_cfg.cpu_dtype)
        return (report_markdown(report, lang, services.engine.concurrency, ladder),
                states_markdown(states, lang, manager is not None, budget, events),
                adapters_markdown(services, lang))

    def adapters(self, request: gr.Request) -> str:
        return adapters_markdown(self.shared.services, lang_of(request))

    def load(self, name: Any, request: gr.Request) -> tuple[str, str, str]:
        with shown_to_user(lang_of(request)):
            if self.shared.services.public:
                raise Refusal("settings_locked")
            self.shared.services.load_model(str(name))
        return self.overview(request)

    def unload(self, name: Any, request: gr.Request) -> tuple[str, str, str]:
        lang = lang_of(request)
        with shown_to_user(lang):
            if self.shared.services.public:
                raise Refusal("settings_locked")
            if not self.shared.services.unload_model(str(name)):
                gr.Info(f"{name}: " + ("불러와 있지 않거나 사용 중입니다." if lang == "ko"
                                       else "not loaded, or busy right now."))
        return self.overview(request)

    def save(self, precision: Any, request: gr.Request) -> None:
        lang = lang_of(request)
        services = self.shared.services
        with shown_to_user(lang):
            if services.public:
                raise Refusal("settings_locked")
            if not services.config_path:
                raise Refusal("public_readonly")
            name = Path(services.config_path).name  # never a server path in front of a user
            try:
                save_precision(services.config_path, str(precision))
            except ConfigError as exc:
                raise gr.Error(config_error_text(exc, lang), print_exception=False) from None
            except (OSError, json.JSONDecodeError) as exc:
                detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
                raise gr.Error(f"{name}: {detail}", print_exception=False) from None
        gr.Info(say(lang, "precision_saved", precision=precision, path=name))

    def estimate(self, model: Any, request: gr.Request) -> str:
        return estimate_markdown(self.shared, str(model or ""), lang_of(request))


def build_and_wire(shared: Shared, banner: tuple[Any, Any] | None = None) -> tuple[list[Any], Any]:
    """Returns (outputs, refresh) so the layout redraws the tab when it is opened. `banner`: the page's model
    banner and the function that draws it, redrawn after a model switch."""
    h = ModelsHandlers(shared)
    cfg = shared.services.cfg
    report = gr.Markdown(elem_id="models-report")
    gr.Markdown(t("models.extra_title"))
    states = gr.Markdown(elem_id="models-states")
    with gr.Row():
        which = gr.Dropdown(choices=list(OPTIONAL_MODELS), value="vision", label=t("models.which"),
                            elem_id="models-which", scale=2)
        load = gr.Button(t("models.load"), elem_id="models-load", scale=1)
        unload = gr.Button(t("models.unload"), elem_id="models-unload", scale=1)
        refresh = gr.Button(t("models.refresh"), elem_id="models-refresh", scale=1)
    with gr.Row():
        gr.Markdown(t("models.adapters_title"))
        refresh_adapters = gr.Button(t("models.adapters_refresh"), elem_id="models-adapters-refresh", size="sm",
                                     scale=0, min_width=180)
    adapters = gr.Markdown(elem_id="models-adapters")
    gr.Markdown(t("models.switch_title"))
    gr.Markdown(t("models.switch_note"), elem_classes=["small-note"])
    with gr.Row():
        switch_model = gr.Textbox(value="", placeholder="demo · /models/my-model · model.gguf · owner/name",
                                  label=t("models.switch_model"), elem_id="models-switch-model", scale=3, max_lines=1)
        switch_precision_box = gr.Dropdown(choices=list(PRECISIONS), value="auto", allow_custom_value=True,
                                           label=t("models.switch_precision"), elem_id="models-switch-precision",
                                           scale=1)
        switch = gr.Button(t("models.switch"), elem_id="models-switch", scale=1, variant="primary",
                           interactive=not shared.services.public)
    switch_log = gr.Textbox(label=t("models.switch_log"), elem_id="models-switch-log", lines=4, max_lines=12,
                            interactive=False)
    gr.Markdown(t("models.precision_title"))
    with gr.Row():
        one = cfg.engine.precision if isinstance(cfg.engine.precision, str) else None  # a list: config.json only
        precision = gr.Radio(choices=list(PRECISIONS), value=one, label=t("models.precision"),
                             elem_id="models-precision", scale=3)
        save = gr.Button(t("models.precision_save"), elem_id="models-precision-save", scale=1,
                         interactive=not shared.services.public)
    gr.Markdown(t("models.estimate_title"))
    with gr.Row():
        model = gr.Textbox(value=cfg.engine.model, label=t("models.estimate_model"), elem_id="models-estimate-model",
                           scale=3, max_lines=1)
        estimate = gr.Button(t("models.estimate"), elem_id="models-estimate", scale=1)
    estimate_out = gr.Markdown(elem_id="models-estimate-table")
    outputs = [report, states, adapters]
    refresh.click(h.overview, None, outputs, **PRIVATE)
    refresh_adapters.click(h.adapters, None, adapters, **PRIVATE)
    switched = switch.click(h.switch, [switch_model, switch_precision_box], [switch_log, *outputs],
                            concurrency_id="models", concurrency_limit=1, **PRIVATE)
    if banner is not None:   # the page's model line follows the model now serving
        component, redraw = banner
        switched.then(redraw, None, component, queue=False, show_progress="hidden", **PRIVATE)
    load.click(h.load, which, outputs, concurrency_id="models", concurrency_limit=1, **PRIVATE)
    unload.click(h.unload, which, outputs, concurrency_id="models", concurrency_limit=1, **PRIVATE)
    save.click(h.save, precision, None, **PRIVATE)
    for trigger in (estimate.click, model.submit):
        trigger(h.estimate, model, estimate_out, concurrency_id="estimate", concurrency_limit=1, **PRIVATE)
    return outputs, h.overview
