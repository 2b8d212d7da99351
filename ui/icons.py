"""Icons that render on any machine: the symbols the page uses, in a small font sent with the page.

A fresh Linux machine without an emoji font showed ➕ ⏹ 🔄 as empty boxes (issue 24). ui/assets/icons.ttf is a
subset of Noto Color Emoji (SIL Open Font License 1.1, ui/assets/icons-LICENSE.txt) holding only the symbols
written in ui/ (ui/assets/icons.json lists them). The page puts it first in its font stacks with a
`unicode-range`, so it draws those symbols and nothing else; the server sends it as a file the browser caches
(font_url, api/assets.py), not inside the page's CSS. Rebuild after adding a symbol:
`.venv/bin/pip install fonttools==4.60.1 && .venv/bin/python -m ui.icons` (needs fonts-noto-color-emoji);
tests/test_ui_units.py fails while a symbol in ui/ is missing from the font.
"""
from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

import gradio as gr

UI = Path(__file__).resolve().parent
FONT_FILE = UI / "assets" / "icons.ttf"
LIST_FILE = UI / "assets" / "icons.json"
FAMILY = "PageIcons"
NOTO_EMOJI = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")


def is_symbol(ch: str) -> bool:
    """A pictograph or dingbat a plain text font may lack (arrows, emoji, the emoji variation selector)."""
    cp = ord(ch)
    return cp == 0xFE0F or (cp >= 0x2100 and unicodedata.category(ch) == "So") or 0x1F000 <= cp <= 0x1FAFF


def symbols_in_ui() -> set[str]:
    """Every symbol written in ui/'s Python and JavaScript (labels, notices, icons of states)."""
    files = sorted(UI.glob("*.py")) + sorted((UI / "assets").glob("*.js"))
    return {ch for f in files for ch in f.read_text(encoding="utf-8") if is_symbol(ch)}


def shipped_symbols(key: str = "code_points") -> set[str]:
    """The code points ui/assets/icons.ttf holds (as listed beside it when it was built); with
    key="left_to_the_text_font", those of ui/ that Noto Color Emoji lacks (plain arrows, the pencil)."""
    return {chr(cp) for cp in json.loads(LIST_FILE.read_text(encoding="utf-8"))[key]}


def font_url() -> str:
    """Where the server answers with the font (api/assets.py, with a year-long cache header): a path named by
    the font's hash, so a rebuilt font is a new URL that no browser has cached."""
    digest = hashlib.sha256(FONT_FILE.read_bytes()).hexdigest()[:16]
    return f"/ui-assets/icons-{digest}.ttf"


def font_css() -> str:
    """@font-face pointing at the font's URL (fetched once, then cached), and the page's stacks with it first.
    The URL is relative (no leading /), so a page served under a proxy's path prefix finds it too."""
    ranges = ",".join(f"U+{ord(ch):X}" for ch in sorted(shipped_symbols()))
    theme = gr.themes.Default()
    return (f'@font-face {{ font-family: "{FAMILY}"; src: url("{font_url().lstrip("/")}") format("truetype"); '
            f"unicode-range: {ranges}; font-display: swap; }}\n"
            f':root, .dark, .gradio-container {{ --font: "{FAMILY}", {theme.font}; '
            f'--font-mono: "{FAMILY}", {theme.font_mono}; }}\n')


def build() -> None:
    """Subset Noto Color Emoji to the symbols in ui/ (those it has; plain arrows come from the text font)."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    available = TTFont(str(NOTO_EMOJI)).getBestCmap()
    wanted = sorted(ord(ch) for ch in symbols_in_ui() if ord(ch) in available)
    options = subset.Options()
    options.layout_features = ["*"]
    font = subset.load_font(str(NOTO_EMOJI), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted)
    subsetter.subset(font)
    subset.save_font(font, str(FONT_FILE), options)
    others = sorted(ord(ch) for ch in symbols_in_ui() if ord(ch) not in available)
    LIST_FILE.write_text(json.dumps({"source": NOTO_EMOJI.name, "code_points": wanted,
                                     "left_to_the_text_font": others}, indent=1) + "\n", encoding="utf-8")
    print(f"{FONT_FILE.name}: {len(wanted)} symbols, {FONT_FILE.stat().st_size // 1024} KiB; not in Noto Color "
          f"Emoji (left to the text font): {', '.join(f'U+{cp:04X}' for cp in others) or 'none'}")


if __name__ == "__main__":
    build()
