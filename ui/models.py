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
from ui.i18n import SAY_EN, lang_of, say, t
from ui.page import Shared
from engine.prompting.codec import PATH_LABELS
from engine.loading.quality import read_quality, relative_costs
from engine.serving.batch_criterion import RUNG_BITS, rung_batches

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


def rung_words(rung: str, lang: str) -> str:
    """A load rung in plain words: "cpu-bfloat16" -> "full precision (bfloat16)", "8bit" -> "8-bit, about half ..."."""
    if rung.startswith("cpu-"):
        return say(lang, "plain_rung_cpu", dtype=rung[4:])
    key = f"plain_rung_{rung}"
    return say(lang, key) if key in SAY_EN else rung


def device_words(report: Any, lang: str) -> str:
    """Where the model runs: the GPU (and CPU memory for the offload rung), the CPU, or a remote server."""
    device = str(report.device)
    if report.rung == "remote":
        return say(lang, "where_remote", device=device)
    return say(lang, "where_gpu", device=device) if device.startswith("cuda") else say(lang, "where_cpu")


def batching_words(path: str, slots: int, rung: str, lang: str) -> str:
    """Whether several people's requests are answered together, and if not why, in words a user understands
    (the reason a quantized rung takes turns comes from the measured criterion, batch_criterion.json)."""
    if path == "continuous":
        return say(lang, "batch_together", slots=slots)
    if path == "remote" or rung == "remote":
        return say(lang, "batch_remote", slots=slots)
    if path != "queue":
        return say(lang, "batch_one")
    bits = RUNG_BITS.get(rung)
    together = rung_batches(rung) if bits else True
    if together is False:
        return say(lang, "batch_quantized", bits=bits)
    if together is None:
        return say(lang, "batch_unmeasured", bits=bits)
    return say(lang, "batch_turns", slots=slots)


def summary_lines(report: Any, lang: str, load: Any = None) -> list[str]:
    """Model, precision, device, memory and whether requests share a batch: what a user needs first."""
    model = f"`{report.model_id}`" + (f" · {say(lang, 'summary_demo')}" if report.demo else "")
    lines = [f"- {say(lang, 'summary_model', model=model)}",
             f"- {say(lang, 'summary_rung', words=rung_words(str(report.rung), lang), rung=report.rung)}",
             f"- {say(lang, 'summary_device', where=device_words(report, lang))}"]
    if report.rung != "remote":
        parts = ([say(lang, "memory_gpu", size=_gib(report.gpu_bytes))] if report.gpu_bytes else []) + (
            [say(lang, "memory_cpu", size=_gib(report.cpu_bytes))] if report.cpu_bytes or not report.gpu_bytes else [])
        lines.append(f"- {say(lang, 'summary_memory', parts=', '.join(parts))}")
    if load is not None:
        people = batching_words(str(load.path), int(load.slots), str(report.rung), lang)
        lines.append(f"- {say(lang, 'summary_people', line=people)}")
    return lines


def details_markdown(report: Any, lang: str, concurrency: Any = None, ladder: str = "") -> str:
    """The engine's own account, folded under the summary: why this rung (the preflight's numbers, the
    scheduler), the configured ladder, how many at once and from what, the attempts down the ladder."""
    ko = lang == "ko"
    path = getattr(report, "prompt_path", "")
    lines = [f"- {'이유' if ko else 'Why'}: {report.reason}"] + ([f"- {ladder}"] if ladder else [])
    lines += ([f"- {concurrency_line(concurrency, lang)}"] if concurrency is not None else [])
    lines += ([f"- {say(lang, 'prompt_path', path=PATH_LABELS.get(path, path))}"] if path else [])
    lines.append(f"- {'불러온 시간' if ko else 'Loaded in'} {report.seconds:.1f} s")
    blocks = ["\n".join(lines)]
    if report.attempts:
        rows = ["| # | rung | " + ("결과" if ko else "outcome") + " | s |", "|---|---|---|---|"]
        rows += [f"| {i} | {a.rung} | {a.outcome} | {a.seconds:.1f} |" for i, a in enumerate(report.attempts, 1)]
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def report_markdown(report: Any, lang: str, concurrency: Any = None, ladder: str = "", load: Any = None) -> str:
    """The chat model's LoadReport: the plain summary (`summary_lines`), the measured cost of each rung, then
    the engine details (`details_markdown`) in a closed <details>. The demo/offline notice is not repeated
    here: the page's banner says it once for every tab."""
    blocks = ["\n".join(summary_lines(report, lang, load))]
    if report.rung != "remote":
        blocks.append(quality_markdown(report.model_id, lang))
    blocks.append(f'<details class="models-details"><summary>{say(lang, "summary_details")}</summary>\n\n'
                  f"{details_markdown(report, lang, concurrency, ladder)}\n\n</details>")
    return "\n\n".join(blocks)


QUALITY_FILE = Path(__file__).resolve().parents[1] / "docs" / "quality.json"


def speed_words(row: Any, lang: str) -> str:
    """The measured decode speed of a rung (bench/bench_quality.py: greedy, one stream), or "not measured"."""
    tps = getattr(row, "tokens_per_second", None)
    if not isinstance(tps, (int, float)) or tps <= 0:
        return say(lang, "quality_not_measured")
    return say(lang, "quality_speed", tps=tps)


def quality_markdown(model_id: str, lang: str, path: Path = QUALITY_FILE) -> str:
    """The measured cost of each rung for this model (written by `make bench`): memory, perplexity, speed, and
    whether several people are answered together."""
    rows = read_quality(path, model_id)
    if not rows:
        return say(lang, "quality_none")
    ko = lang == "ko"
    head = ("| 정밀도 | 메모리 | perplexity | 속도 | 요약 | 여러 사람이 함께 |" if ko
            else "| rung | memory | perplexity | speed | in short | several people at once |")
    lines = [say(lang, "quality_title", model=f"`{model_id}`"), "", head, "|---|---|---|---|---|---|"]
    together = {True: say(lang, "rung_batches"), False: say(lang, "rung_takes_turns"), None: "?"}
    for row, mem, ppl in relative_costs(rows):
        short = (f"{mem:+.0f} % {'메모리' if ko else 'memory'}, {ppl:+.0f} % perplexity" if row is not rows[0]
                 else ("기준" if ko else "reference"))
        lines.append(f"| {row.rung} | {row.weight_bytes / 2**20:.0f} MiB | {row.perplexity:.2f} | "
                     f"{speed_words(row, lang)} | {short} | {together[rung_batches(row.rung)]} |")
    return "\n".join(lines + ["", f"<sub>{say(lang, 'quality_speed_note')}</sub>"])


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


def model_config_and_source(model: str) -> tuple[Any, str]:
    """(transformers config, where it came from: "folder" | "cache" | "shipped" | "hub") of a folder, a demo
    model or a hub id. A hub id is read from the local cache, else from the config files shipped with the app
    (engine/loading/known_configs.py: the default chat and image models), else from the hub if it answers."""
    from transformers import AutoConfig

    from engine.loading.known_configs import known_config

    model = model.strip()
    if model.startswith("demo"):
        from engine.loading.sources import resolve_source

        return AutoConfig.from_pretrained(str(resolve_source(model).folder), trust_remote_code=False), "folder"
    if Path(model).expanduser().is_dir():
        return AutoConfig.from_pretrained(str(Path(model).expanduser()), trust_remote_code=False), "folder"
    try:
        return AutoConfig.from_pretrained(model, trust_remote_code=False, local_files_only=True), "cache"
    except (OSError, ValueError):
        shipped = known_config(model)
        if shipped is not None:
            return shipped, "shipped"
        from engine.loading.sources import hub_reachable

        if not hub_reachable():     # decided at once: no minute of retries per click
            raise OSError(f"{model} is not in the local cache and the Hugging Face hub cannot be reached") from None
        return AutoConfig.from_pretrained(model, trust_remote_code=False), "hub"


def read_model_config(model: str) -> Any:
    """transformers config of a folder, a demo model, or a hub id (`model_config_and_source`)."""
    return model_config_and_source(model)[0]


def estimate_markdown(shared: Shared, model: str, lang: str) -> str:
    """Needed GPU memory at each rung: one row per card (common sizes, then engine.max_gpu_memory or this
    machine's GPU) with the rung it would load at, under a line of weight and KV-cache sizes."""
    import psutil

    from engine.monitor import read_gpus
    from engine.loading.preflight import RUNGS, estimate_rungs, first_fitting_rung, kv_cache_bytes, layer_sizes

    model = (model or "").strip() or shared.services.cfg.engine.model
    cfg = shared.services.cfg.engine
    try:
        config, source = model_config_and_source(model)
        sizes = layer_sizes(config)            # the meta-device model is built once, not once per card
        gpus, _ = read_gpus()
        cards = [(say(lang, "estimate_card", gb=c), c * GiB) for c in CARDS_GIB]
        if cfg.max_gpu_memory is not None:
            cards.append(("engine.max_gpu_memory", int(cfg.max_gpu_memory * GiB)))
        elif gpus:
            cards.append((say(lang, "estimate_this_gpu"), gpus[0].memory_free))
        offload = int(psutil.virtual_memory().available * 0.8)   # what the loader lets 4bit-offload spill into
        table = [(label, estimate_rungs(config, budget_bytes=budget, context_tokens=cfg.max_context,
                                        headroom=cfg.kv_headroom, offload_bytes=offload, sizes=sizes))
                 for label, budget in cards]
    except Exception as exc:  # noqa: BLE001 - any unreadable config is reported, never raised as a bug
        return say(lang, "unknown_model", model=model, detail=str(exc).splitlines()[0][:200])
    first = table[0][1]
    weights = " · ".join(f"{e.rung} {e.weight_bytes / GiB:.2f} GiB" for e in first)
    lines = [say(lang, "estimate_head", model=f"`{model}`", context=cfg.max_context, headroom=f"{cfg.kv_headroom:.0%}"),
             "", say(lang, "estimate_sizes", weights=weights,
                     kv=f"{kv_cache_bytes(config, cfg.max_context) / GiB:.2f} GiB"), "",
             f"| {say(lang, 'estimate_card_col')} | " + " | ".join(RUNGS) + f" | {say(lang, 'estimate_loads_as')} |",
             "|---|" + "---|" * (len(RUNGS) + 1)]
    for label, estimates in table:
        cells = [f"{'✅' if e.fits else '❌'} {e.needed_bytes / GiB:.1f}" for e in estimates]
        best = first_fitting_rung(estimates)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {best or say(lang, 'estimate_no_fit')} |")
    lines += ["", say(lang, "estimate_legend")]
    if source == "shipped":
        lines += ["", f"<sub>{say(lang, 'estimate_shipped')}</sub>"]
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
        return (report_markdown(report, lang, services.engine.concurrency, ladder, services.engine.load_stats()),
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
        estimate_vision = gr.Button(t("models.estimate_vision"), elem_id="models-estimate-vision", scale=1)
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
    # The image model's architecture ships with the app too: one click puts its id in the box and estimates it.
    estimate_vision.click(lambda: cfg.engine.vision_model, None, model, queue=False, **PRIVATE).then(
        h.estimate, model, estimate_out, concurrency_id="estimate", concurrency_limit=1, **PRIVATE)
    return outputs, h.overview
