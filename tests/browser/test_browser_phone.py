"""The page on a phone (390 px), like ChatGPT's (issue 24): the chat list opens from a button at the top as a
drawer, the message box is in reach without scrolling, the reply actions are one row of icons whose full
text stays their accessible name. On a desktop the list stays beside the chat and the button is hidden."""
from __future__ import annotations

from tests.browser.pages import wait_ready

PHONE = {"width": 390, "height": 844}


def test_on_a_phone_the_chat_list_is_a_drawer_and_the_reply_actions_one_row(app_server, new_context):
    page = new_context().new_page()
    page.set_viewport_size(PHONE)
    page.goto(app_server.url, wait_until="load")
    wait_ready(page)
    toggle, drawer = page.locator("#drawer-toggle"), page.locator("#chat-drawer")
    box = toggle.bounding_box()
    assert toggle.is_visible() and box["y"] < 200, box                 # at the top, not below the conversation
    assert not drawer.is_visible()
    field = page.locator("#chat-input textarea").bounding_box()
    assert field["y"] + field["height"] <= PHONE["height"], field      # the message box in reach
    names = {"stop": "Stop", "retry": "Retry", "edit-last": "Edit last message"}
    boxes = {key: page.locator(f"#{key}").bounding_box() for key in names}
    assert len({round(b["y"]) for b in boxes.values()}) == 1, boxes     # one row
    assert all(b["width"] <= 48 for b in boxes.values()), boxes          # icons, not full-width buttons
    for key, name in names.items():
        assert name in (page.locator(f"#{key}").get_attribute("aria-label") or page.locator(f"#{key}").inner_text())

    toggle.click()
    page.wait_for_function("() => document.body.classList.contains('drawer-open')")
    page.wait_for_timeout(300)                                           # the slide-in
    opened = drawer.bounding_box()
    assert drawer.is_visible() and opened["x"] >= 0 and opened["x"] + opened["width"] <= PHONE["width"], opened
    page.locator("#new-chat").click()                                     # a choice closes the drawer
    page.wait_for_function("() => !document.body.classList.contains('drawer-open')")
    page.wait_for_timeout(300)
    assert not drawer.is_visible()
    toggle.click()
    page.locator("#drawer-backdrop").click(position={"x": PHONE["width"] - 20, "y": 400})
    page.wait_for_function("() => !document.body.classList.contains('drawer-open')")

    page.set_viewport_size({"width": 1400, "height": 1000})              # a desktop: the list beside the chat
    page.wait_for_timeout(300)
    assert drawer.is_visible() and not toggle.is_visible()
