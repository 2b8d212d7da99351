"""A document attached in the Chat tab of a real browser: its token count is shown, and it stays after a reload."""
from __future__ import annotations

from tests.browser import pages

NOTES = ("# Survey notes\n\n- The river survey starts on **Thursday** at 15:00.\n- 예산: 4,200유로\n"
         "- Bring the waders and the red notebook.\n")
LINE = "#chatbot [data-testid=user] :text('tokens in the context')"


def test_a_markdown_file_is_attached_counted_and_kept_after_reload(app_server, new_context, tmp_path):
    path = tmp_path / "survey-notes.md"
    path.write_text(NOTES, encoding="utf-8")
    page = pages.open_app(new_context(), app_server.url)
    pages.set_max_tokens(page, 4)
    page.set_input_files("#chat-input input[type=file]", str(path))
    page.wait_for_selector("#chat-input [aria-label='File thumbnail']")     # uploaded: the box shows it
    pages.send(page, "What do the notes say about the budget?")
    pages.wait_replies_done(page, 1)
    shown = "\n".join(pages.user_texts(page))       # the document's line and the question: two parts
    assert "survey-notes.md" in shown and "What do the notes say about the budget?" in shown
    counted = page.locator(LINE).first.inner_text()
    tokens = int(counted.split("·")[1].split("tokens")[0].replace(",", "").strip())
    assert 30 <= tokens <= 80, counted             # the notes are about 50 tokens for the demo model's tokenizer
    chat = page.locator("#chatbot")
    chat.scroll_into_view_if_needed()
    pages.screenshot(page, "chat-document.png", clip=chat.bounding_box())
    pages.reload(page)
    page.wait_for_selector(LINE)
    assert page.locator(LINE).first.inner_text() == counted                # kept with the message, as shown
