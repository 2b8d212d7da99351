"""Issue 22, defect 2: a Gradio file field that names no uploaded file (an empty path, ".", "..", /etc/passwd,
a folder, a file of the app) gets our own sentence, in the caller's language, never a server path.

Raw HTTP against a real `python app.py --demo`: gradio_client would upload a local file itself, so only a
hand-made body can name a path on the server. Before the fix Gradio answered, before our handler ran,
"Cannot move <the app's working directory> to the gradio cache dir because it was not uploaded by a user."
"""
from __future__ import annotations

import json
import tempfile

import httpx
import pytest

from tests.conftest import ROOT, AppServer, module_server

NEED = {("describe_image", "en"): "Add an image first", ("transcribe", "en"): "Record or upload audio first",
        ("describe_image", "ko"): "먼저 이미지를 넣으세요", ("transcribe", "ko"): "먼저 녹음하거나 오디오를"}


server = module_server("files", config={"generation": {"max_new_tokens": 4}})


def forged(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "x"}


def server_paths(server) -> list[str]:
    """Paths on the server that a reply must never name."""
    return [str(ROOT), str(server.tmp), str(server.tmp.resolve()), tempfile.gettempdir(), "/etc", "gradio cache"]


def last_event(server, url: str, body: dict, lang: str, session_hash: str | None = None) -> str:
    """POST the call, then read its SSE stream; the final event (`event: error` ...) or the refusal itself."""
    headers = {"Accept-Language": "ko-KR,ko;q=0.9" if lang == "ko" else "en-US,en;q=0.9"}
    r = httpx.post(server.url + url, json=body, headers=headers, timeout=30)
    if r.status_code != 200:
        return f"HTTP {r.status_code}: {r.text}"
    if session_hash is None:
        name = url.rsplit("/", 1)[-1]
        stream = httpx.get(server.url + f"/gradio_api/call/{name}/{r.json()['event_id']}", headers=headers,
                           timeout=120).text
        event, _, data = stream.strip().split("\n\n")[-1].partition("\ndata: ")
        return f"{event}\ndata: {json.dumps(json.loads(data), ensure_ascii=False)}"   # Korean as itself
    stream = httpx.get(server.url + "/gradio_api/queue/data", params={"session_hash": session_hash},
                       headers=headers, timeout=120).text
    events = [json.loads(line[len("data: "):]) for line in stream.splitlines() if line.startswith("data: ")]
    done = [e for e in events if e.get("msg") == "process_completed"]
    assert done, stream[-500:]
    return json.dumps(done[-1], ensure_ascii=False)


def assert_refused(server, reply: str, name: str, lang: str) -> None:
    assert NEED[(name, lang)] in reply, reply
    for path in server_paths(server):
        assert path not in reply, (path, reply)
    assert "Cannot move" not in reply and "not uploaded by a user" not in reply, reply


def bad_paths(server) -> dict[str, str]:
    return {"empty": "", "dot": ".", "dotdot": "..", "passwd": "/etc/passwd", "folder": str(server.tmp),
            "app file": str(ROOT / "app.py"), "relative app file": "app.py", "config": str(server.config_path),
            "escape from the upload folder": str(__import__("pathlib").Path(tempfile.gettempdir()) / "gradio" / ".."
                                                 / ".." / "etc" / "passwd")}


@pytest.mark.parametrize("name,second", [("describe_image", "q"), ("transcribe", "")])
def test_a_file_field_that_names_no_upload_gets_our_sentence(server, name, second):
    for label, path in bad_paths(server).items():
        for lang in ("en", "ko") if label in ("empty", "passwd") else ("en",):
            reply = last_event(server, f"/gradio_api/call/{name}", {"data": [forged(path), second]}, lang)
            assert reply.startswith("event: error") or reply.startswith("HTTP"), (label, reply)
            assert_refused(server, reply, name, lang)


def test_the_named_argument_call_and_the_queue_are_guarded_too(server):
    reply = last_event(server, "/gradio_api/call/v2/describe_image",
                       {"image": forged("/etc/passwd"), "question": "q"}, "en")
    assert_refused(server, reply, "describe_image", "en")
    config = httpx.get(server.url + "/config", timeout=30).json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "transcribe")
    reply = last_event(server, "/gradio_api/queue/join",
                       {"data": [forged("."), ""], "fn_index": fn_index, "session_hash": "filefield01"}, "ko",
                       session_hash="filefield01")
    assert_refused(server, reply, "transcribe", "ko")


def test_a_real_upload_still_works(server, tmp_path):
    from PIL import Image

    picture = tmp_path / "red.png"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(picture)
    with picture.open("rb") as f:
        r = httpx.post(server.url + "/gradio_api/upload", files={"files": ("red.png", f, "image/png")}, timeout=30)
    assert r.status_code == 200, r.text
    uploaded_path = r.json()[0]
    reply = last_event(server, "/gradio_api/call/describe_image", {"data": [forged(uploaded_path), "q"]}, "en")
    assert reply.startswith("event: complete"), reply


# ---- the check itself (api/guard.py), on real files ---------------------------------------------------------

def test_the_guard_knows_gradios_upload_folder():
    from pathlib import Path

    from gradio.utils import get_upload_folder

    from api.guard import upload_folder

    assert upload_folder() == Path(get_upload_folder()).resolve()


def test_only_a_file_inside_the_upload_folder_passes(tmp_path):
    from api.guard import is_upload, without_foreign_files

    folder = tmp_path / "uploads"
    (folder / "abc").mkdir(parents=True)
    good = folder / "abc" / "red.png"
    good.write_bytes(b"png")
    (folder / "link.png").symlink_to(ROOT / "app.py")      # a link out of the folder is not an upload
    assert is_upload(str(good), folder.resolve())
    for bad in ("", ".", "..", "/etc/passwd", str(folder), str(folder / "abc"), str(folder / "link.png"),
                str(folder / "abc" / ".." / ".." / "x"), "app.py", "a\x00b", "https://example.com/x.png"):
        assert not is_upload(bad, folder.resolve()), bad
    body = {"data": [forged(str(good)), forged("/etc/passwd"), "q", {"text": "hi", "files": [
        forged("."), forged(str(good))]}], "fn_index": 3, "session_hash": "s"}
    out, changed = without_foreign_files(body, folder.resolve())
    assert changed and out == {"data": [forged(str(good)), None, "q", {"text": "hi", "files": [forged(str(good))]}],
                               "fn_index": 3, "session_hash": "s"}
    named, changed = without_foreign_files({"image": forged(""), "question": "q"}, folder.resolve())
    assert changed and named == {"image": None, "question": "q"}
    clean = {"data": [forged(str(good)), "q", {"path": "/etc/passwd"}]}   # no meta: Gradio moves nothing
    assert without_foreign_files(clean, folder.resolve()) == (clean, False)


def test_a_marker_written_with_json_escapes_is_guarded_too(server):
    """A body that spells the file marker with \\u escapes reads as the same field once decoded: the guard's quick
    pass over bodies without the marker must not let it through."""
    raw = json.dumps({"data": [forged("/etc/passwd"), "q"]}).replace("gradio.FileData", "gradio\\u002eFileData")
    assert "gradio.FileData" not in raw
    r = httpx.post(server.url + "/gradio_api/call/describe_image", content=raw,
                   headers={"Content-Type": "application/json"}, timeout=30)
    stream = httpx.get(server.url + f"/gradio_api/call/describe_image/{r.json()['event_id']}", timeout=120).text
    assert_refused(server, stream, "describe_image", "en")
