"""The one atomic file write: a crash leaves the old file or the new one, whole, never a 0-byte or half file.

Temp file in the same folder (so the rename stays on one filesystem), written and fsync'ed, renamed
over the target with os.replace, then the folder fsync'ed (the rename lives in the folder's inode).
Used for chat sessions, config.json, training run files and adapter metadata.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

TMP_MARK = ".tmp-"  # every temp name holds it, so a cleanup can find what a crash left behind


def temp_path_for(path: Path) -> Path:
    """A unique hidden name beside `path`: '.<name>.tmp-<pid>-<random>'."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in `folder` durable. Windows cannot open a folder (and renames there
    are durable without it), so it is skipped there."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, whole.

    `mode` is the new file's permission (before umask); 0o600 for private data. OSError propagates
    (disk full, read-only folder) after the temp file is removed; callers word it for their users.
    """
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", mode: int = 0o644) -> None:
    """atomic_write_bytes for text (UTF-8 unless told: Korean stays readable in the file)."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode)
