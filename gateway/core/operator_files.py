"""Files an operator writes (configuration, profiles, rules, contacts), read within bounds.

Each is read as UTF-8 text of at most MAX_FILE_BYTES, so that a mistaken or hostile file is
refused with a message instead of taking the gateway's memory or time.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a large compound's configuration is a few hundred KiB
MAX_DEPTH = 32  # nesting of mappings and lists; the deepest real file has fewer than ten


class UnreadableFile(Exception):
    """An operator's file that is not taken as text; `line` is where, 1 when not known."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_operator_file(path: Path) -> str:
    """The text of `path`, with newlines as `\\n`; UnreadableFile when it cannot be had."""
    try:
        # non-blocking: a named pipe put in a file's place must not stall the reader
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile("not a regular file: not read")
        data = b""
        while len(data) <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableFile(f"larger than {MAX_FILE_BYTES // 1024} KiB: not read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UnreadableFile(f"not UTF-8 text on line {line} (byte {exc.start}: {exc.reason})",
                             line) from exc
    # as text mode reads it: \r\n and \r end a line
    return text.replace("\r\n", "\n").replace("\r", "\n")


_TOML_MARK = re.compile(r"""[\[\]{}#"']""")


def toml_brackets_deeper_than(text: str, depth: int) -> bool:
    """Whether arrays and inline tables in TOML `text` open deeper than `depth`, outside
    strings and comments: told before a parser recurses that deep (Python's tomllib
    recurses once per level, and a RecursionError deep in the stack is no clean refusal)."""
    level, i, n = 0, 0, len(text)
    while (mark := _TOML_MARK.search(text, i)) is not None:
        i = mark.start()
        c = text[i]
        if c in "[{":
            level += 1
            if level > depth:
                return True
            i += 1
        elif c in "]}":
            level = max(0, level - 1)
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            quote = c * 3 if text.startswith(c * 3, i) else c
            i = _string_end(text, i + len(quote), quote)
    return False


# the body of each kind of TOML string, up to where it may end (regular expressions: a
# 1,000-device configuration is 200 KB of text, and a loop per character took 0.1 s)
_STRING_BODY = {
    '"': re.compile(r'[^"\\\n]*(?:\\[\s\S][^"\\\n]*)*'),
    "'": re.compile(r"[^'\n]*"),
    '"""': re.compile(r'[^"\\]*(?:(?:\\[\s\S]|"(?!""))[^"\\]*)*'),
    "'''": re.compile(r"[^']*(?:'(?!'')[^']*)*"),
}


def _string_end(text: str, i: int, quote: str) -> int:
    """Where a TOML string that opened before `i` ends (after its closing quote); at the
    line's end for an unterminated one-line string (the parser says so)."""
    end = _STRING_BODY[quote].match(text, i).end()  # type: ignore[union-attr]
    return end + len(quote) if text.startswith(quote, end) else end


def deeper_than(document: Any, depth: int = MAX_DEPTH) -> bool:
    """Whether dicts and lists in `document` nest deeper than `depth`; walked without recursion."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list):
            if level > depth:
                return True
            stack.extend((child, level + 1) for child in _children(value))
    return False


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from value.values()
    elif isinstance(value, list):
        yield from value
