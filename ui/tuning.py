"""Tuning tab: train a LoRA/QLoRA adapter on a chat JSONL in a subprocess, watch its loss, cancel.

The dataset is checked first (every bad line by number). Training runs as `python -m tuning.train`
(tuning.jobs), so chatting goes on meanwhile. A page keeps its job in gr.State and polls it with a
gr.Timer; one run at a time per app (TrainingSlot, made in build_tab). A finished adapter shows in
the Models tab and in every chat's Adapter choice.
"""
from __future__ import annotations

import html
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from config import ConfigError
from tuning.config import TrainConfig, load_config
from tuning.dataset import DatasetError, DatasetReport, load_dataset
from tuning.jobs import CANCEL_GRACE_S, JobStatus, TrainingJob, start_training
from tuning.runs import RunFolderError
from ui.i18n import lang_of, say, t
from ui.page import Shared

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT_ROOT / "tuning" / "data" / "sample.jsonl"
CONFIGS = PROJECT_ROOT / "tuning" / "configs"
POLL_SECONDS = 1.5
MAX_STEPS = 100_000
METHODS = [("LoRA", "lora"), ("QLoRA (4-bit)", "qlora")]
PRIVATE = {"api_visibility": "private"}
PLOT_COLUMNS = ["step", "loss", "series"]
SERIES_COLORS = {"train": "#2563eb", "eval": "#ea580c"}     # the loss plot's series, in legend order
STATE_ICON = {"starting": "⏳", "loading": "⏳", "tokenizing": "⏳", "training": "🏋️", "saving": "💾", "done": "💾",
              "succeeded": "✅", "failed": "❌", "cancelled": "⏹"}


def _error(text: str, lang: str) -> gr.Error:
    return gr.Error(html.escape(text, quote=False), title="오류" if lang == "ko" else "Error", print_exception=False)


# ------------------------------------------------------------------ what to train, from the loaded engine
@dataclass(frozen=True)
class Plan:
    """Which base the tab trains on and where adapters go: always the chat engine's own."""

    demo: bool
    base_model: str
    adapters_dir: str
    remote: bool

    def config_path(self, method: str) -> Path:
        if method not in ("lora", "qlora"):
            raise ConfigError(f"tuning.method: {method!r} is not allowed; choose one of lora, qlora")
        return CONFIGS / (f"demo-{method}.json" if self.demo else f"{method}.json")

    def defaults(self, method: str = "lora") -> TrainConfig:
        return load_config(self.config_path(method), {"name": "defaults", "base_model": self.base_model,
                                                      "adapters_dir": self.adapters_dir})

    def default_steps(self) -> int:
        steps = self.defaults().max_steps
        return steps if steps > 0 else 300


def plan_for(services: Any) -> Plan:
    """Demo engine (also a demo fallback): the demo configs on the demo base; else lora/qlora on the model serving
    now (after a switch in the Models tab, the new one; engine.model with a remote backend)."""
    cfg, engine = services.cfg.engine, services.engine
    report, remote = engine.report, bool(getattr(engine, "remote", False))
    return Plan(bool(getattr(report, "demo", False)), cfg.model if remote else report.model_id, cfg.adapters_dir,
                remote)


def suggest_name(adapters_dir: str | Path, stem: str = "my-adapter") -> str:
    """A name no adapter or run uses yet: my-adapter, my-adapter-2, ..."""
    root = Path(adapters_dir)
    for i in range(1, 10_000):
        name = stem if i == 1 else f"{stem}-{i}"
        if not (root / name).exists() and not (root / ".runs" / name).exists():
            return name
    return f"{stem}-{secrets.token_hex(3)}"


# ------------------------------------------------------------------ pure helpers (tested without Gradio)
def dataset_path(file: Any, max_mb: int) -> Path:
    """The uploaded file (refused over server.max_upload_mb), or the sample when nothing is uploaded."""
    if file is None or file == "":
        return SAMPLE
    path = Path(file if isinstance(file, (str, Path)) else (file.get("path") if isinstance(file, dict)
                                                            else getattr(file, "path", "")))
    if not path.is_file():
        raise DatasetError(f"the uploaded file {path.name!r} is gone: upload it again")
    size = path.stat().st_size
    if size > max_mb * 2**20:
        raise TooBig(size, max_mb)
    return path


class TooBig(DatasetError):
    def __init__(self, size: int, max_mb: int):
        super().__init__(f"{size / 2**20:.1f} MB > {max_mb} MB")
        self.size, self.max_mb = size, max_mb


def check_text(report: DatasetReport, lang: str, sample: bool) -> str:
    """The validation result: a header in the user's language, then every bad line by number."""
    name = "tuning/data/sample.jsonl" if sample else Path(report.path).name
    head = say(lang, "tuning_check_head", name=name, good=len(report.examples), bad=len(report.problems))
    if not report.lines:
        head += " " + say(lang, "tuning_check_empty")
    elif report.ok:
        head = "✅ " + head
    else:
        head = "❌ " + head + " " + say(lang, "tuning_check_fix")
    return "\n".join([head] + [f"  {p}" for p in report.problems])


def plot_frame(rows: list[dict]) -> Any:
    """metrics.jsonl rows -> the LinePlot's table: step, loss, series (train / eval); None before any."""
    import pandas as pd

    points = []
    for row in rows:
        step = row.get("step")
        if not isinstance(step, (int, float)):
            continue
        for key, series in (("loss", "train"), ("eval_loss", "eval")):
            value = row.get(key)
            if isinstance(value, (int, float)):
                points.append({"step": int(step), "loss": float(value), "series": series})
    if not points:   # None, not an empty table: the plot then draws its first points properly (Gradio 6.31)
        return None
    # Every series is named from the first frame on, a series without losses yet by one empty point (drawn
    # as nothing): Gradio 6.31 takes the legend's series from the data when it first draws the chart and
    # later only swaps the data, so eval losses that came after the first train losses had no legend entry
    # (tests/browser/test_browser_tuning_plot.py).
    first = min(p["step"] for p in points)
    for series in SERIES_COLORS:
        if all(p["series"] != series for p in points):
            points.append({"step": first, "loss": None, "series": series})
    return pd.DataFrame(points, columns=PLOT_COLUMNS)


def loss_plot(value: Any = None) -> gr.LinePlot:
    """The loss plot, filled by `plot_frame` on each tick of the tab's timer."""
    return gr.LinePlot(value, x="step", y="loss", color="series", title=t("tuning.plot"), color_map=SERIES_COLORS,
                       x_title=t("tuning.axis_step"), y_title=t("tuning.axis_loss"), x_lim=[0, None],
                       y_lim=[0, None], x_axis_format="d", y_axis_format=".2f", height=320, elem_id="tuning-plot")
    # Steps as whole numbers from 0, losses from 0 with two decimals: a single point once read as axes
    # labelled "2.099380" and "0.000000" (issue 24).


def status_markdown(name: str, st: JobStatus, rows: list[dict], lang: str, seconds: float | None = None) -> str:
    """One line a person can read at a glance: state · name · step x / y · last losses · time."""
    word = say(lang, f"tuning_state_{st.state}") if f"tuning_state_{st.state}" in _STATES else st.state
    parts = [f"{STATE_ICON.get(st.state, '')} **{word}**", f"`{html.escape(name)}`"]
    if st.examples is not None:
        parts.append(say(lang, "tuning_examples", n=st.examples))
    if st.max_steps:
        parts.append(say(lang, "tuning_step", step=st.step, total=st.max_steps,
                         pct=int(100 * st.step / max(1, st.max_steps))))
    if st.state == "training" and st.seconds_per_step is not None:
        parts.append(say(lang, "tuning_pace", s=f"{st.seconds_per_step:.1f}"))
    losses = [r["loss"] for r in rows if isinstance(r.get("loss"), (int, float))]
    evals = [r["eval_loss"] for r in rows if isinstance(r.get("eval_loss"), (int, float))]
    if losses:
        parts.append(f"loss {losses[-1]:.4f}")
    if evals:
        parts.append(f"eval loss {evals[-1]:.4f}")
    if seconds is not None:
        parts.append(f"{seconds:.0f} s")
    line = " · ".join(parts)
    if st.state == "succeeded":
        line += "\n\n" + say(lang, "tuning_done", name=html.escape(name))
    elif st.state == "failed":
        line += "\n\n" + html.escape(st.message or "")
    elif st.state == "cancelled":
        line += "\n\n" + say(lang, "tuning_cancelled_note")
    return line


_STATES = {f"tuning_state_{s}" for s in STATE_ICON}


# ------------------------------------------------------------------ one run at a time
class SlotBusy(Exception):
    def __init__(self, job: TrainingJob):
        super().__init__(job.name)
        self.job = job


class TrainingSlot:
    """The one training run this app allows at a time, shared by every page (made by build_tab).

    Each run gets a random key; the page that started it keeps the key in its BrowserState, so a
    reloaded page finds its run again (and can watch or cancel it); other pages cannot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None
        self._key: str | None = None
        self._started = 0.0
        self._ended: float | None = None

    def start(self, launch: Callable[[], TrainingJob]) -> tuple[TrainingJob, str]:
        with self._lock:
            if self._job is not None and self._job.running():
                raise SlotBusy(self._job)
            job = launch()      # validation errors raise here, leaving the slot free
            self._job, self._key, self._started = job, secrets.token_urlsafe(24), time.monotonic()
            self._ended = None
            return job, self._key

    def find(self, key: Any) -> TrainingJob | None:
        with self._lock:
            return self._job if isinstance(key, str) and key and key == self._key else None

    def running(self) -> TrainingJob | None:
        with self._lock:
            return self._job if self._job is not None and self._job.running() else None

    def elapsed(self, job: TrainingJob) -> float | None:
        """Seconds since the run started, until it ended (None for an older run)."""
        with self._lock:
            if job is not self._job:
                return None
            if self._ended is None and not job.running():
                self._ended = time.monotonic()
            return (self._ended or time.monotonic()) - self._started


# ------------------------------------------------------------------ handlers
class TuningHandlers:
    def __init__(self, shared: Shared, slot: TrainingSlot | None = None):
        self.shared = shared
        self.services = shared.services
        self.slot = slot or TrainingSlot()

    @property
    def plan(self) -> Plan:
        """Read at each use: a model switch changes the base, and with it the configs and defaults."""
        return plan_for(self.services)

    def page_defaults(self) -> tuple[str, int]:
        """The name and steps boxes at each page load: a free adapter name and the steps for today's base (a
        model switch changes them). A private load event: a callable component value would be public."""
        plan = self.plan
        return suggest_name(plan.adapters_dir), plan.default_steps()

    def validate(self, file: Any, method: str, lang: str) -> tuple[Path, DatasetReport, str]:
        """Read and check the dataset as training will (lines too long for max_length too, when the
        tokenizer is here); (path, report, text for the check box). Raises gr.Error for unusable files."""
        try:
            path = dataset_path(file, self.services.cfg.server.max_upload_mb)
            plan = self.plan
            codec = None if plan.remote else getattr(self.services.engine, "codec", None)
            report = load_dataset(path, codec, plan.defaults(method or "lora").max_length)
        except TooBig as exc:
            too_big = say(lang, "tuning_too_big", size=f"{exc.size / 2**20:.1f}", limit=exc.max_mb)
            raise _error(too_big, lang) from None
        except (DatasetError, ConfigError) as exc:
            raise _error(str(exc), lang) from None
        return path, report, check_text(report, lang, path == SAMPLE)

    def check(self, file: Any, method: Any, request: gr.Request) -> str:
        return self.validate(file, str(method or "lora"), lang_of(request))[2]

    def start(self, file: Any, method: Any, name: Any, steps: Any, overwrite: Any, request: gr.Request) -> tuple:
        """Check the data, then start training; outputs: job, run key, check text, status, plot, log,
        timer, Start, Cancel."""
        lang = lang_of(request)
        if self.services.public:
            raise _error(say(lang, "training_locked"), lang)
        method = str(method or "lora")
        name = str(name or "").strip()
        try:
            steps = int(float(steps))
        except (TypeError, ValueError):
            raise _error(say(lang, "tuning_bad_steps", max=MAX_STEPS), lang) from None
        if not 1 <= steps <= MAX_STEPS:
            raise _error(say(lang, "tuning_bad_steps", max=MAX_STEPS), lang)
        path, report, text = self.validate(file, method, lang)
        if not report.ok:
            gr.Warning(say(lang, "tuning_fix_first"))
            return (gr.skip(), gr.skip(), text, say(lang, "tuning_fix_first"), gr.skip(), gr.skip(), gr.skip(),
                    gr.skip(), gr.skip())
        plan = self.plan      # one base for the whole start, even if the model is switched meanwhile
        defaults = plan.defaults(method)
        overrides = {"name": name, "dataset": str(path), "base_model": plan.base_model,
                     "adapters_dir": plan.adapters_dir, "max_steps": steps, "overwrite": bool(overwrite),
                     "logging_steps": max(1, min(defaults.logging_steps, steps // 10)),
                     "eval_steps": max(1, min(defaults.eval_steps, steps)),
                     "save_steps": max(1, min(defaults.save_steps, steps))}
        try:
            job, key = self.slot.start(lambda: start_training(plan.config_path(method), overrides))
        except SlotBusy as busy:
            st = busy.job.status()
            busy_text = say(lang, "tuning_busy", name=busy.job.name, step=st.step, total=st.max_steps or "?")
            raise _error(busy_text, lang) from None
        except RunFolderError as exc:
            raise _error(f"{exc} — {say(lang, 'tuning_taken_hint')}", lang) from None
        except (ConfigError, DatasetError) as exc:
            raise _error(str(exc), lang) from None
        st = job.status()
        return (job, key, text, status_markdown(job.name, st, [], lang, 0.0), plot_frame([]), "",
                gr.Timer(active=True), gr.Button(interactive=False), gr.Button(interactive=True))

    def _view(self, job: TrainingJob, lang: str) -> tuple:
        st = job.status()
        rows = job.metrics()
        done = st.finished
        return (job, status_markdown(job.name, st, rows, lang, self.slot.elapsed(job)),
                plot_frame(rows),
                job.log_tail(15), gr.Timer(active=not done), gr.Button(interactive=done),
                gr.Button(interactive=not done))

    def tick(self, job: Any, key: Any, request: gr.Request) -> tuple:
        """Every POLL_SECONDS while a run of this page is going (and once after a page load, to find it
        again): job, status, plot, log, timer, Start, Cancel. The timer stops itself when the run ends."""
        job = job if isinstance(job, TrainingJob) else self.slot.find(key)
        if job is None:
            return None, gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False), gr.skip(), gr.skip()
        return self._view(job, lang_of(request))

    def cancel(self, job: Any, key: Any, request: gr.Request) -> tuple:
        """Stop this page's run (after the current step, no adapter published); same outputs as tick."""
        lang = lang_of(request)
        job = job if isinstance(job, TrainingJob) else self.slot.find(key)
        if job is None or not job.running():
            gr.Info(say(lang, "tuning_nothing_to_cancel"))
            if job is None:
                return None, gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False), gr.skip(), gr.skip()
        else:
            job.cancel(timeout=CANCEL_GRACE_S)
        return self._view(job, lang)


# ------------------------------------------------------------------ the tab
def build_tab(shared: Shared, page: gr.Blocks) -> TuningHandlers:
    """Fill the Tuning tab (called inside gr.Tab of `page` by ui.layout); returns its handlers."""
    h = TuningHandlers(shared, TrainingSlot())
    plan, public = h.plan, shared.services.public
    gr.Markdown(t("tuning.intro"))
    if plan.demo:
        gr.Markdown(t("tuning.demo_note"), elem_classes=["small-note"])
    if plan.remote:
        gr.Markdown(t("tuning.remote_note"))
    if public:
        gr.Markdown(t("tuning.public_note"))
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            upload = gr.File(label=t("tuning.dataset"), file_types=[".jsonl", ".json", ".txt"], file_count="single",
                             type="filepath", elem_id="tuning-file", height=120)
            gr.Markdown(t("tuning.sample_note"), elem_classes=["small-note"])
            with gr.Row():
                check = gr.Button(t("tuning.check"), elem_id="tuning-check-run", size="sm")
                sample = gr.Button(t("tuning.use_sample"), elem_id="tuning-use-sample", size="sm")
            check_box = gr.Textbox(label=t("tuning.check_result"), lines=3, max_lines=14, interactive=False,
                                   elem_id="tuning-check")
            method = gr.Radio(METHODS, value="lora", label=t("tuning.method"), elem_id="tuning-method")
            name_at_build, steps_at_build = h.page_defaults()
            name = gr.Textbox(value=name_at_build, label=t("tuning.name"), max_lines=1, elem_id="tuning-name",
                              info=t("tuning.name_info"))
            steps = gr.Number(value=steps_at_build, minimum=1, maximum=MAX_STEPS, precision=0,
                              label=t("tuning.steps"), elem_id="tuning-steps")
            overwrite = gr.Checkbox(False, label=t("tuning.overwrite"), elem_id="tuning-overwrite")
            with gr.Row():
                start = gr.Button(t("tuning.start"), variant="primary", elem_id="tuning-start", interactive=not public)
                cancel = gr.Button(t("tuning.cancel"), variant="stop", elem_id="tuning-cancel", interactive=False)
        with gr.Column(scale=2):
            status = gr.Markdown(t("tuning.idle"), elem_id="tuning-status")
            plot = loss_plot()
            with gr.Accordion(t("tuning.log"), open=False):
                log = gr.Textbox(show_label=False, lines=10, max_lines=15, interactive=False, elem_id="tuning-log")
    job = gr.State(None)
    key = gr.BrowserState("", storage_key="localchat.tuning", secret=shared.secret)
    # Active at first so a reloaded page finds its run once; the first tick turns it off when there is none.
    timer = gr.Timer(POLL_SECONDS, active=True)
    watch = [job, status, plot, log, timer, start, cancel]
    page.load(h.page_defaults, None, [name, steps], queue=False, show_progress="hidden", **PRIVATE)
    upload.upload(h.check, [upload, method], check_box, show_progress="hidden", **PRIVATE)
    check.click(h.check, [upload, method], check_box, show_progress="hidden", **PRIVATE)
    sample.click(lambda: None, None, upload, queue=False, **PRIVATE) \
        .then(h.check, [upload, method], check_box, **PRIVATE)
    upload.clear(h.check, [upload, method], check_box, **PRIVATE)
    start.click(h.start, [upload, method, name, steps, overwrite],
                [job, key, check_box, status, plot, log, timer, start, cancel],
                concurrency_id="tuning", concurrency_limit=1, show_progress="hidden", **PRIVATE)
    timer.tick(h.tick, [job, key], watch, show_progress="hidden", queue=False, **PRIVATE)
    cancel.click(h.cancel, [job, key], watch, concurrency_id="tuning-cancel", **PRIVATE)
    return h


__all__ = ["Plan", "TrainingSlot", "TuningHandlers", "build_tab", "check_text", "dataset_path", "plan_for",
           "loss_plot", "plot_frame", "status_markdown", "suggest_name"]
