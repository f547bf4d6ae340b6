"""Rule expressions: a small, typed subset of Python compiled once into closures.

The text is parsed with `ast` and every node is checked against a whitelist: comparisons,
and/or/not, + - * / // %, number/text/true/false literals, the record's field names, and
abs/min/max. Nothing the user wrote is ever passed to eval or exec.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.model import Scalar
from rules.fields import FieldType
from rules.limits import MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_NUMBER

Values = Mapping[str, Scalar]
Evaluator = Callable[[Values], Any]


class ValueMismatch(TypeError):
    """A record's field does not have the type its kind's model declares."""


@dataclass(frozen=True, slots=True)
class ExprIssue:
    message: str
    line_offset: int  # lines below the first line of the expression


@dataclass(frozen=True, slots=True)
class Expression:
    """A checked expression; `evaluate` raises KeyError when a field is missing."""

    source: str
    type: FieldType
    names: frozenset[str]
    evaluate: Evaluator


_ARITHMETIC: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: Mapping[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_EQUALITY = (ast.Eq, ast.NotEq)
_FUNCTIONS = {"abs": abs, "min": min, "max": max}
_SYMBOL = {ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
           ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@"}


def compile_expression(
    source: str, fields: Mapping[str, FieldType], *, want: FieldType | None = FieldType.BOOL
) -> tuple[Expression | None, list[ExprIssue]]:
    """Check `source` against the record's `fields` and compile it; every issue is listed."""
    text = source.strip()
    if len(text) > MAX_EXPRESSION_CHARS:
        return None, [ExprIssue(f"the expression is longer than {MAX_EXPRESSION_CHARS} "
                                "characters", 0)]
    try:
        # parenthesised so that an expression may span lines; "(" keeps the line numbers
        tree = ast.parse("(" + text + "\n)", mode="eval")
    except SyntaxError as exc:
        # an unfinished expression is reported on the closing line we added: keep it on its own
        offset = min((exc.lineno or 1) - 1, text.count("\n"))
        return None, [ExprIssue(f"expression {text!r} is not valid: {exc.msg}", offset)]
    except (RecursionError, MemoryError):  # Python's own parser gave up on the nesting
        return None, [_TOO_DEEP]
    if _depth(tree.body) > MAX_EXPRESSION_DEPTH:
        return None, [_TOO_DEEP]
    checker = _Checker(fields, "(" + text + "\n)")
    evaluate, type_ = checker.visit(tree.body)
    if type_ is not None and want is not None and type_ is not want:
        checker.issue(tree.body, f"the expression gives a {type_.value} value; "
                                 f"a {want.value} one is needed")
    if checker.issues or evaluate is None or type_ is None:
        return None, checker.issues
    return Expression(text, type_, frozenset(checker.names), evaluate), []


_TOO_DEEP = ExprIssue(f"the expression nests operators deeper than {MAX_EXPRESSION_DEPTH} "
                      "levels", 0)


def _depth(tree: ast.expr) -> int:
    """How deep the operators of `tree` nest; walked without recursion."""
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node)
                     if isinstance(child, ast.expr))
    return deepest


Checked = tuple[Evaluator | None, FieldType | None]


class _Checker:
    """Walks the tree once: types every node and builds its closure, or records an issue."""

    def __init__(self, fields: Mapping[str, FieldType], source: str) -> None:
        self._fields = fields
        self._source = source
        self.names: set[str] = set()
        self.issues: list[ExprIssue] = []

    def issue(self, node: ast.AST, message: str) -> None:
        self.issues.append(ExprIssue(message, getattr(node, "lineno", 1) - 1))

    def visit(self, node: ast.expr) -> Checked:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BoolOp):
            return self._bool_op(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        what = {ast.Attribute: "attribute access (a.b)", ast.Subscript: "indexing (a[b])",
                ast.IfExp: "if/else", ast.Lambda: "lambda", ast.JoinedStr: "f-strings"}
        self.issue(node, f"{what.get(type(node), type(node).__name__)} is not allowed in a "
                         "rule expression")
        return None, None

    def _constant(self, node: ast.Constant) -> Checked:
        value = node.value
        if isinstance(value, bool):
            return (lambda _v: value), FieldType.BOOL
        if isinstance(value, int | float):
            if not -MAX_NUMBER <= value <= MAX_NUMBER:  # also false for nan
                shown = ast.get_source_segment(self._source, node) or repr(value)
                self.issue(node, f"the number {shown[:20]}{'...' if len(shown) > 20 else ''} "
                                 f"is out of range (at most {MAX_NUMBER:.0e} either way)")
                return None, FieldType.NUMBER
            return (lambda _v: value), FieldType.NUMBER
        if isinstance(value, str):
            return (lambda _v: value), FieldType.TEXT
        self.issue(node, f"the literal {value!r} is not allowed (numbers, text, true/false)")
        return None, None

    def _name(self, node: ast.Name) -> Checked:
        name = node.id
        if name in ("true", "false", "True", "False"):
            flag = name.lower() == "true"
            return (lambda _v: flag), FieldType.BOOL
        type_ = self._fields.get(name)
        if type_ is None:
            close = difflib.get_close_matches(name, list(self._fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f" (known: {', '.join(sorted(self._fields)) or 'none'})"
            self.issue(node, f"unknown field {name!r}{hint}")
            return None, None
        self.names.add(name)
        check = _GUARDS[type_]

        def field(values: Values) -> Any:
            value = values[name]
            if not check(value):
                raise ValueMismatch(f"{name}={value!r} is not a {type_.value}")
            return value

        return field, type_

    def _bool_op(self, node: ast.BoolOp) -> Checked:
        parts = [self._operand(v, FieldType.BOOL, "and/or") for v in node.values]
        if any(p is None for p in parts):
            return None, FieldType.BOOL
        fns = [p for p in parts if p is not None]
        if isinstance(node.op, ast.And):
            return (lambda v: all(f(v) for f in fns)), FieldType.BOOL
        return (lambda v: any(f(v) for f in fns)), FieldType.BOOL

    def _unary(self, node: ast.UnaryOp) -> Checked:
        if isinstance(node.op, ast.Not):
            inner = self._operand(node.operand, FieldType.BOOL, "not")
            if inner is None:
                return None, FieldType.BOOL
            return (lambda v: not inner(v)), FieldType.BOOL
        if isinstance(node.op, ast.USub | ast.UAdd):
            fn = self._operand(node.operand, FieldType.NUMBER, "a sign")
            if fn is None:
                return None, FieldType.NUMBER
            if isinstance(node.op, ast.USub):
                return (lambda v: -fn(v)), FieldType.NUMBER
            return fn, FieldType.NUMBER
        self.issue(node, "the operator ~ is not allowed")
        return None, None

    def _binary(self, node: ast.BinOp) -> Checked:
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            symbol = _SYMBOL.get(type(node.op), type(node.op).__name__)
            self.issue(node, f"the operator {symbol} is not allowed")
            return None, None
        left = self._operand(node.left, FieldType.NUMBER, "arithmetic")
        right = self._operand(node.right, FieldType.NUMBER, "arithmetic")
        if left is None or right is None:
            return None, FieldType.NUMBER
        return (lambda v: op(left(v), right(v))), FieldType.NUMBER

    def _compare(self, node: ast.Compare) -> Checked:
        refused = [cmp for cmp in node.ops if type(cmp) not in _COMPARE]
        if refused:
            names = {ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
            self.issue(node, f"the comparison {names.get(type(refused[0]), '?')} is not "
                             "allowed (use < <= > >= == !=)")
            return None, FieldType.BOOL
        operands = [self.visit(node.left), *(self.visit(c) for c in node.comparators)]
        steps: list[tuple[Callable[[Any, Any], bool], Evaluator, Evaluator]] = []
        broken = False
        for index, cmp in enumerate(node.ops):
            op = _COMPARE[type(cmp)]
            (lf, lt), (rf, rt) = operands[index], operands[index + 1]
            if lt is not None and rt is not None:
                if lt is not rt:
                    self.issue(node, f"cannot compare a {lt.value} with a {rt.value}"
                               + (" (flags are the numbers 0 and 1)"
                                  if FieldType.BOOL in (lt, rt) else ""))
                    broken = True
                elif lt is FieldType.BOOL and not isinstance(cmp, _EQUALITY):
                    self.issue(node, "true/false values can only be compared with == or !=")
                    broken = True
            if lf is None or rf is None:
                broken = True
                continue
            steps.append((op, lf, rf))
        if broken:
            return None, FieldType.BOOL

        def compare(values: Values) -> bool:
            # a < b < c evaluates b once, as in Python
            left = steps[0][1](values)
            for op, _lf, rf in steps:
                right = rf(values)
                if not op(left, right):
                    return False
                left = right
            return True

        return compare, FieldType.BOOL

    def _call(self, node: ast.Call) -> Checked:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCTIONS:
            self.issue(node, "only abs(), min() and max() may be called")
            return None, None
        if node.keywords:
            self.issue(node, f"{name}() takes no keyword arguments")
            return None, FieldType.NUMBER
        if any(isinstance(a, ast.Starred) for a in node.args):
            self.issue(node, f"{name}() takes no *arguments")
            return None, FieldType.NUMBER
        count = len(node.args)
        if (name == "abs" and count != 1) or (name != "abs" and count < 2):
            self.issue(node, f"{name}() takes {'one argument' if name == 'abs' else 'two or more'}"
                             f", not {count}")
            return None, FieldType.NUMBER
        args = [self._operand(a, FieldType.NUMBER, f"{name}()") for a in node.args]
        if any(a is None for a in args):
            return None, FieldType.NUMBER
        fns = [a for a in args if a is not None]
        if name == "abs":
            return (lambda v: abs(fns[0](v))), FieldType.NUMBER
        pick = min if name == "min" else max
        return (lambda v: pick(f(v) for f in fns)), FieldType.NUMBER

    def _operand(self, node: ast.expr, want: FieldType, where: str) -> Evaluator | None:
        fn, type_ = self.visit(node)
        if type_ is not None and type_ is not want:
            self.issue(node, f"{where} needs a {want.value} value, not a {type_.value}")
            return None
        return fn


def _is_number(value: object) -> bool:
    # flags may arrive as true/false; bool is an int, as in the kind's model
    return isinstance(value, int | float)


_GUARDS: Mapping[FieldType, Callable[[object], bool]] = {
    FieldType.NUMBER: _is_number,
    FieldType.TEXT: lambda value: isinstance(value, str),
    FieldType.BOOL: lambda value: isinstance(value, bool),
}
