"""System tab: GPU memory, utilisation, power and temperature (NVML), RAM and CPU, last reply speed.

A gr.Timer redraws it every two seconds while the tab is open; a machine without a GPU says
"no GPU", never an error.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import gradio as gr

from engine.monitor import read_system
from ui.i18n import lang_of, say, t
from ui.page import Shared

PRIVATE = {"api_visibility": "private"}
GiB = 1024 ** 3
REFRESH_SECONDS = 2.0


def _na(value: Any, fmt: str) -> str:
    return fmt.format(value) if value is not None else "—"


def system_markdown(shared: Shared, lang: str) -> str:
    stats = read_system()
    ko = lang == "ko"
    lines = []
    if stats.gpus:
        head = ("| GPU | 메모리 (사용/전체) | 사용률 | 전력 | 온도 |" if ko
                else "| GPU | Memory (used/total) | Utilisation | Power | Temperature |")
        lines += [head, "|---|---|---|---|---|"]
        for g in stats.gpus:
            pct = 100 * g.memory_used / g.memory_total if g.memory_total else 0
            lines.append(f"| {g.name} | {g.memory_used / GiB:.2f} / {g.memory_total / GiB:.2f} GiB ({pct:.0f} %) | "
                         f"{_na(g.utilization, '{} %')} | {_na(g.power_watts, '{:.0f} W')} | "
                         f"{_na(g.temperature_c, '{} °C')} |")
    else:
        note = stats.gpu_note if stats.gpu_note and stats.gpu_note != "no GPU" else ""
        lines.append("**" + say(lang, "no_gpu") + "**" + (f" ({note})" if note else ""))
    ram_pct = 100 * stats.ram_used / stats.ram_total if stats.ram_total else 0
    lines += ["", ("| RAM | CPU |" if not ko else "| 메모리(RAM) | CPU |"), "|---|---|",
              f"| {stats.ram_used / GiB:.1f} / {stats.ram_total / GiB:.1f} GiB ({ram_pct:.0f} %) | "
              f"{stats.cpu_percent:.0f} % |", ""]
    last = shared.services.metrics.last()
    lines.append(say(lang, "last_reply", tps=last.tokens_per_second, tokens=last.tokens, seconds=last.seconds,
                     model=last.model) if last else say(lang, "no_reply_yet"))
    stamp = time.strftime("%H:%M:%S")
    lines.append(f"\n<sub>{'갱신' if ko else 'Updated'} {stamp}</sub>")
    return "\n".join(lines)


def build_and_wire(shared: Shared) -> tuple[gr.Timer, gr.Markdown, Callable[..., str]]:
    """Returns the timer, the panel and its refresh, so the layout runs it only while this tab is shown."""
    gr.Markdown(t("system.title"))
    panel = gr.Markdown(elem_id="system-panel", min_height=160)
    live = gr.Checkbox(value=True, label=t("system.live"), elem_id="system-live")
    timer = gr.Timer(REFRESH_SECONDS, active=False)

    def refresh(request: gr.Request) -> str:
        return system_markdown(shared, lang_of(request))

    timer.tick(refresh, None, panel, show_progress="hidden", queue=False, **PRIVATE)
    live.change(lambda on: gr.Timer(active=bool(on)), live, timer, queue=False, **PRIVATE)
    return timer, panel, refresh
