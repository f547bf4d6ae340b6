"""XML from devices, read with the standard library's expat and nothing that expands.

A document type declaration is refused before anything in it is read: no internal entity
can be declared (so no "billion laughs"), no external entity or DTD is ever fetched. A
device's event document has no need of one. The tree comes back as plain values: an
element with children is a dict (a repeated child becomes a list), a leaf is its text;
namespaces and attributes are dropped.
"""

from __future__ import annotations

from typing import Any
from xml.parsers import expat

MAX_DEPTH = 32


class XmlError(ValueError):
    """Not a well-formed XML document the gateway accepts."""


class _Refused(Exception):
    pass


class _Tree:
    def __init__(self) -> None:
        self.stack: list[tuple[str, dict[str, Any], list[str]]] = []
        self.root: tuple[str, Any] | None = None

    def start(self, name: str, _attrs: dict[str, str]) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise _Refused(f"elements nested deeper than {MAX_DEPTH}")
        self.stack.append((name.rpartition("}")[2].rpartition(" ")[2], {}, []))

    def end(self, _name: str) -> None:
        tag, children, text = self.stack.pop()
        value: Any = children if children else "".join(text).strip()
        if not self.stack:
            self.root = (tag, value)
            return
        parent = self.stack[-1][1]
        if tag in parent:
            existing = parent[tag]
            if isinstance(existing, list):
                existing.append(value)
            else:
                parent[tag] = [existing, value]
        else:
            parent[tag] = value

    def text(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)


def _refuse_doctype(*_args: object) -> None:
    raise _Refused("a document type declaration (entities are not accepted)")


def _refuse_entity(*_args: object) -> None:
    raise _Refused("an entity declaration")


def parse_xml(data: bytes) -> tuple[str, Any]:
    """The root element's local name and its value; XmlError naming what was wrong."""
    tree = _Tree()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = lambda *_args: 0  # never fetched: an error if met
    parser.StartElementHandler = tree.start
    parser.EndElementHandler = tree.end
    parser.CharacterDataHandler = tree.text
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise XmlError(f"refused: {exc}") from None
    except expat.ExpatError as exc:
        raise XmlError(f"not well-formed XML: {expat.errors.messages.get(exc.code, exc)} "
                       f"at line {exc.lineno}, column {exc.offset}") from None
    if tree.root is None:
        raise XmlError("no root element")
    return tree.root
