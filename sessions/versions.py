"""Versions of a message: Retry and Edit keep what they replace, ‹ n/m › switches between them.

The data shape (schema 3), and why:

    session["messages"]  the branch shown, in order: exactly what the next prompt is built from.
    message["versions"]  on the first message of a fork: the versions NOT shown, each a whole
                         branch (list of messages) starting at this position.
    message["shown"]     which version (0-based, creation order) is the one shown.

A fork holds whole branches, not single messages, because the rest of a conversation depends on
the version it followed (chat-ui's and Open WebUI's message trees): Retry forks at the reply
(each branch is a reply and whatever followed it), Edit forks at the user message (the earlier
text, its reply and the rest stay together as one version). Branches nest: a hidden branch may
hold forks of its own. Only the first message of the branch shown carries `versions`/`shown`;
the first message of a hidden branch never does (its fork's record lives on the shown head).

Keeping the shown branch as the plain message list means every reader that existed before
versions (prompting, search, export, the summary count, the Chatbot) still reads one linear
conversation, and an old file (schema 2) is a valid schema-3 file without forks. Every hidden
message keeps its own id, status, attachments and provenance (model, rung, adapter, sampling).

These functions are pure: they take cleaned messages and return new lists; the store writes
the result in one atomic file replace, so a version is either fully on disk or not at all.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

from .errors import InvalidSessionData

MAX_DEPTH = 32  # forks nested inside hidden branches; bounds recursion when reading a file
FORK_KEYS = ("versions", "shown")


def all_messages(messages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every message of a conversation: the branch shown and every hidden version, depth first."""
    for message in messages:
        yield message
        for branch in message.get("versions", ()):
            yield from all_messages(branch)


def count(message: dict[str, Any]) -> int:
    """How many versions the fork at this message has (1: no fork)."""
    return len(message.get("versions", ())) + 1


def _bare(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in FORK_KEYS}


def branches(messages: list[dict[str, Any]], index: int) -> tuple[list[list[dict[str, Any]]], int]:
    """(every version of the fork at `index` in creation order, the position of the one shown)."""
    head = messages[index]
    hidden = copy.deepcopy(head.get("versions", []))
    shown = head.get("shown", 0)
    live = [_bare(head), *copy.deepcopy(messages[index + 1:])]
    return hidden[:shown] + [live] + hidden[shown:], shown


def nesting(messages: list[dict[str, Any]], level: int = 0) -> int:
    """How deep forks nest in a conversation (0: no fork; 1: forks, none inside a hidden version; ...)."""
    deepest = level if level else 0
    for message in messages:
        for branch in message.get("versions", ()):
            deepest = max(deepest, level + 1, nesting(branch, level + 1))
    return deepest


def _forked(before: list[dict[str, Any]], every: list[list[dict[str, Any]]], show: int) -> list[dict[str, Any]]:
    live = every[show]
    hidden = every[:show] + every[show + 1:]
    head = dict(live[0])
    if hidden:
        head["versions"], head["shown"] = hidden, show
    result = [*before, head, *live[1:]]
    if nesting(result) > MAX_DEPTH:     # refused before the write: reading it back would call the file damaged
        raise InvalidSessionData(f"Versions in this chat would nest more than {MAX_DEPTH} deep; start a new chat.")
    return result


def _check_index(messages: list[dict[str, Any]], index: Any) -> int:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(messages):
        raise InvalidSessionData(f"There is no message {index!r} in this chat (it has {len(messages)}).")
    return index


def add_version(messages: list[dict[str, Any]], index: int, head: dict[str, Any]) -> list[dict[str, Any]]:
    """Retry / Edit: `head` becomes the newest version at `index` and is shown; what was shown from
    `index` on is kept as a version."""
    index = _check_index(messages, index)
    if messages[index]["role"] != head["role"]:
        raise InvalidSessionData(
            f"A new version of message {index} must have its role ({messages[index]['role']}), not {head['role']}."
        )
    every, _ = branches(messages, index)
    every.append([_bare(head)])
    return _forked(copy.deepcopy(messages[:index]), every, len(every) - 1)


def show(messages: list[dict[str, Any]], index: int, number: Any) -> list[dict[str, Any]]:
    """Show version `number` (0-based) of the fork at `index`: that branch becomes the conversation."""
    index = _check_index(messages, index)
    total = count(messages[index])
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < total:
        raise InvalidSessionData(f"Message {index} has {total} version(s); there is no version {number!r}.")
    every, _ = branches(messages, index)
    return _forked(copy.deepcopy(messages[:index]), every, number)


def keep_fork(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` replaces `old` in place (Continue grows a reply): the fork `old` headed stays with it."""
    kept = _bare(new)
    for key in FORK_KEYS:
        if key in old:
            kept[key] = old[key]
    return kept


def check_fork(message: dict[str, Any], where: str, depth: int, clean: Any) -> dict[str, Any]:
    """Validate `versions`/`shown` of a raw message; returns the cleaned pair (empty without a fork).

    `clean(raw, where, depth)` cleans one message of a branch (model.clean_message, passed in
    to keep this module free of a cycle).
    """
    has_versions, has_shown = "versions" in message, "shown" in message
    if not has_versions and not has_shown:
        return {}
    if has_versions != has_shown:
        raise InvalidSessionData(f"{where} needs both 'versions' and 'shown', or neither.")
    if depth >= MAX_DEPTH:
        raise InvalidSessionData(f"{where} has versions nested more than {MAX_DEPTH} deep.")
    versions, shown = message["versions"], message["shown"]
    if not isinstance(versions, list) or not versions:
        raise InvalidSessionData(f"{where} 'versions' must be a non-empty list of branches.")
    if not isinstance(shown, int) or isinstance(shown, bool) or not 0 <= shown <= len(versions):
        raise InvalidSessionData(f"{where} 'shown' must be a whole number from 0 to {len(versions)}.")
    cleaned = []
    for b, branch in enumerate(versions):
        if not isinstance(branch, list) or not branch:
            raise InvalidSessionData(f"{where} version {b} must be a non-empty list of messages.")
        out = [clean(m, f"{where} version {b} message {i}", depth + 1) for i, m in enumerate(branch)]
        if out[0]["role"] != message.get("role"):
            raise InvalidSessionData(
                f"{where} version {b} starts with a message of role {out[0]['role']}, not {message.get('role')}.")
        if any(key in out[0] for key in FORK_KEYS):
            raise InvalidSessionData(f"{where} version {b} starts with a message that has versions of its own.")
        cleaned.append(out)
    return {"versions": cleaned, "shown": shown}
