"""Bounds on rule and contacts files: what a file may ask of the gateway's memory and time.

docs/rules.md lists them; a file beyond one is refused with its line, never half-loaded.
"""

from __future__ import annotations

from gateway.core.operator_files import MAX_DEPTH, MAX_FILE_BYTES

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_DURATION_MS",
    "MAX_EXPRESSION_CHARS",
    "MAX_EXPRESSION_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_FORMAT_WIDTH",
    "MAX_MESSAGE_CHARS",
    "MAX_NUMBER",
    "MAX_TEXT_CHARS",
    "MAX_VALUES",
]

MAX_ALIASES = 50  # *name references to &name anchors in one file
MAX_VALUES = 100_000  # values of one file, with every alias counted as the value it names
MAX_TEXT_CHARS = 4096  # one text value
MAX_NUMBER = 10**15  # the largest number, in a file or in an expression, either sign
MAX_DURATION_MS = 366 * 24 * 3_600_000  # a year
MAX_EXPRESSION_CHARS = 1000
MAX_EXPRESSION_DEPTH = 32  # operators nested in one expression
MAX_MESSAGE_CHARS = 1000  # a message template, before its placeholders are filled
MAX_FORMAT_WIDTH = 64  # the width or precision of a placeholder, as in {value:>8.2f}
