"""The symbolic labels of #13, read back: `"B"`, `"T//2"`, `"H/4 - 3"`, `"16·(H/4 - 3)²"`. `trace/symbolic.py`
writes them; this is their only reader (the faces show them as they are, the tests substitute the example's
values with `evaluate`). No torch, no sympy: core stays light.

The grammar (Python's precedence): integers; names (`B`, `batch_size`); `+` `-`; `·` (or `*`) multiplication,
`/` exact division (the trace proved it divides), `//` floor division, `%` modulo; unary `-`; powers `²` `³`
(or `^n`), binding tightest; `max(a, b)`, `min(a, b)`, `ceil(a)`, `floor(a)`; parentheses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

SymDim = int | str

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>//|[-+·*/%(),²³^]))")
_SUPERSCRIPT = {"²": 2, "³": 3}
_FUNCTIONS: dict[str, Callable[..., Fraction]] = {
    "max": lambda *a: max(a),
    "min": lambda *a: min(a),
    "ceil": lambda a: Fraction(math.ceil(a)),
    "floor": lambda a: Fraction(math.floor(a)),
}


class LabelError(ValueError):
    """A label this grammar does not read, or a value it needs that was not given."""


@dataclass(frozen=True)
class _Node:
    kind: str  # "num" | "name" | "op" | "neg" | "call"
    value: str | int
    args: tuple[_Node, ...] = ()


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise LabelError(f"cannot read {text!r} at {position}")
        kind = match.lastgroup or "op"
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, op: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (op is not None and token != ("op", op)):
            raise LabelError(f"cannot read {self.text!r}: expected {op or 'more'}")
        self.at += 1
        return token

    def parse(self) -> _Node:
        node = self.sum()
        if self.peek() is not None:
            raise LabelError(f"cannot read {self.text!r}: {self.peek()[1]!r} unexpected")  # type: ignore[index]
        return node

    def sum(self) -> _Node:
        node = self.product()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            node = _Node("op", op, (node, self.product()))
        return node

    def product(self) -> _Node:
        node = self.unary()
        while self.peek() in (("op", "·"), ("op", "*"), ("op", "/"), ("op", "//"), ("op", "%")):
            op = self.take()[1]
            node = _Node("op", "·" if op == "*" else op, (node, self.unary()))
        return node

    def unary(self) -> _Node:
        if self.peek() == ("op", "-"):
            self.take()
            return _Node("neg", "-", (self.unary(),))
        return self.power()

    def power(self) -> _Node:
        node = self.atom()
        while True:
            token = self.peek()
            if token is not None and token[0] == "op" and token[1] in _SUPERSCRIPT:
                self.take()
                node = _Node("op", "^", (node, _Node("num", _SUPERSCRIPT[token[1]])))
            elif token == ("op", "^"):
                self.take()
                node = _Node("op", "^", (node, self.unary()))
            else:
                return node

    def atom(self) -> _Node:
        kind, value = self.take()
        if kind == "num":
            return _Node("num", int(value))
        if kind == "name":
            if self.peek() == ("op", "("):
                if value not in _FUNCTIONS:
                    raise LabelError(f"unknown function {value!r} in {self.text!r}")
                self.take("(")
                args = [self.sum()]
                while self.peek() == ("op", ","):
                    self.take()
                    args.append(self.sum())
                self.take(")")
                return _Node("call", value, tuple(args))
            return _Node("name", value)
        if value == "(":
            node = self.sum()
            self.take(")")
            return node
        raise LabelError(f"cannot read {self.text!r}: {value!r} unexpected")


def _value(node: _Node, values: Mapping[str, int]) -> Fraction:
    if node.kind == "num":
        return Fraction(node.value)
    if node.kind == "name":
        if node.value not in values:
            raise LabelError(f"no value for {node.value!r}")
        return Fraction(values[str(node.value)])
    args = [_value(a, values) for a in node.args]
    if node.kind == "neg":
        return -args[0]
    if node.kind == "call":
        return _FUNCTIONS[str(node.value)](*args)
    a, b = args
    op = node.value
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "·":
        return a * b
    if op == "/":
        return a / b
    if op == "//":
        return Fraction(math.floor(a / b))
    if op == "%":
        return a - b * math.floor(a / b)
    return a ** int(b)  # "^"


def parse(label: str) -> _Node:
    """The label's expression tree (raises LabelError)."""
    return _Parser(label).parse()


def evaluate(label: SymDim, values: Mapping[str, int]) -> int:
    """The size a label stands for when its names take `values` (`evaluate("H/4 - 3", {"H": 32}) == 5`); an
    int is itself. Raises LabelError for a name without a value or a size that is not a whole number."""
    if isinstance(label, int):
        return label
    result = _value(parse(label), values)
    if result.denominator != 1:
        raise LabelError(f"{label!r} is not a whole size at {dict(values)}")
    return int(result)


def evaluate_shape(shape: list[SymDim] | tuple[SymDim, ...], values: Mapping[str, int]) -> tuple[int, ...]:
    """Every dim of a symbolic shape substituted: the concrete shape at `values`."""
    return tuple(evaluate(d, values) for d in shape)


def names(label: SymDim) -> set[str]:
    """The size names a label uses (`"B·T"` → {"B", "T"}); none for an int."""
    if isinstance(label, int):
        return set()
    found: set[str] = set()
    stack = [parse(label)]
    while stack:
        node = stack.pop()
        if node.kind == "name":
            found.add(str(node.value))
        stack.extend(node.args)
    return found


def is_name(label: SymDim) -> bool:
    """Whether the label is one plain name ("B"), not arithmetic ("B·T")."""
    return isinstance(label, str) and label.isidentifier()


def label_entries(label: str) -> list[str]:
    """A shape label's entries: `[B, 16, (H - 4)//2, max(a, b)]` → ["B", "16", "(H - 4)//2", "max(a, b)"] (a comma
    inside parentheses belongs to its entry)."""
    entries, depth, current = [], 0, ""
    for char in label.strip()[1:-1]:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            entries.append(current.strip())
            current = ""
        else:
            current += char
    return [*entries, current.strip()]
