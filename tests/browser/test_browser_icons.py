"""Icons on a machine without an emoji font (issue 24: ➕ ⏹ 🔄 were empty boxes after a fresh `make run`).

Chromium runs with a fontconfig that hides Noto Color Emoji, as on a fresh machine: the same symbol drawn with
the system's sans-serif has no colour at all (the control), and drawn with the page's own font stack it is in
colour, from the small icon font the page loads (ui/icons.py): a file of its own with a year-long cache header,
not base64 inside the page's CSS."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.pages import open_app

NO_EMOJI_FONTS = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <selectfont><rejectfont><glob>*Emoji*</glob></rejectfont></selectfont>
  <cachedir>{cache}</cachedir>
</fontconfig>
"""

# Colourful pixels of one symbol drawn on a canvas in a given font (a tofu box or a plain glyph has none).
COLOURED = """async ([symbol, font]) => {
  await document.fonts.ready;
  await document.fonts.load(font, symbol);
  const c = document.createElement('canvas'); c.width = c.height = 64;
  const g = c.getContext('2d'); g.fillStyle = '#fff'; g.fillRect(0, 0, 64, 64);
  g.font = font; g.fillStyle = '#000'; g.textBaseline = 'top'; g.fillText(symbol, 4, 4);
  const d = g.getImageData(0, 0, 64, 64).data; let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - d[i + 1]) + Math.abs(d[i + 1] - d[i + 2]) > 60) n++;
  }
  return n;
}"""


@pytest.fixture
def emoji_less_browser(browser, tmp_path):
    """A second chromium from the same Playwright (one per process may run), seeing no emoji font."""
    conf = tmp_path / "fonts.conf"
    conf.write_text(NO_EMOJI_FONTS.format(cache=tmp_path / "fc-cache"), encoding="utf-8")
    env = {"FONTCONFIG_FILE": str(conf), "HOME": str(tmp_path)}
    listed = subprocess.run(["fc-list"], env=os.environ | env, capture_output=True, text=True).stdout
    assert "Emoji" not in listed and ("DejaVu" in listed or "Noto" in listed), listed[:500]
    bare = browser.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=os.environ | env)
    yield bare
    bare.close()


# The page's own CSS, as the browser holds it (Gradio puts the app's css in <style> elements).
PAGE_CSS = "() => [...document.querySelectorAll('style')].map(s => s.textContent).join('\\n')"


def test_icons_draw_in_colour_where_the_machine_has_no_emoji_font(app_server, emoji_less_browser):
    ctx = emoji_less_browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    ctx.set_default_timeout(90_000)
    fonts = []       # the icon font as the browser fetched it: a file of its own, cached for a year
    ctx.on("response", lambda r: fonts.append(r) if "/ui-assets/icons-" in r.url else None)
    page = open_app(ctx, app_server.url)
    css = page.evaluate(PAGE_CSS)
    assert "base64" not in css, "the icon font is inlined in the page's CSS again"
    assert '"PageIcons"' in css and "ui-assets/icons-" in css, css[:300]
    new_chat = page.locator("button", has_text="New chat").first
    assert "➕" in new_chat.inner_text()
    page_font = new_chat.evaluate("b => getComputedStyle(b).fontFamily")
    assert page_font.startswith(('PageIcons', '"PageIcons"')), page_font
    for symbol in ("⏹", "🔄", "✅", "❌"):           # icons whose emoji are coloured (Noto's ➕ and 🗑 are grey)
        plain = page.evaluate(COLOURED, [symbol, "32px sans-serif"])
        ours = page.evaluate(COLOURED, [symbol, f"32px {page_font}"])
        assert plain == 0, f"{symbol}: the control found an emoji font ({plain} coloured pixels)"
        assert ours > 50, f"{symbol}: drawn without colour in the page's font ({ours} coloured pixels)"
    assert fonts, "the browser never fetched the icon font"
    font = fonts[0]
    assert font.status == 200 and font.headers["content-type"] == "font/ttf", (font.status, font.headers)
    assert "max-age=31536000" in font.headers["cache-control"] and "immutable" in font.headers["cache-control"]
    ctx.close()
