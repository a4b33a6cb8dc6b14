"""The one vocabulary of the house: hints, layers, findings, fixes and the per-file report.

Everything the analysis produces is expressed in these types, and both faces (the LSP server and
`shapelens check`) only render them. Positions are 1-based lines and 1-based character columns (as ruff
prints them); the LSP layer converts to 0-based UTF-16 itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"
    HINT = "hint"


@dataclass(frozen=True)
class Span:
    """A source range: 1-based lines, 1-based columns, end exclusive (as `ast` end offsets + 1)."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Edit:
    span: Span
    new_text: str


@dataclass(frozen=True)
class Fix:
    title: str
    edits: tuple[Edit, ...]
    safe: bool


@dataclass(frozen=True)
class Related:
    """A second place a finding points at (LSP relatedInformation): e.g. the forward line of a mismatch."""

    span: Span
    message: str


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    span: Span
    message: str
    fixes: tuple[Fix, ...] = ()
    related: tuple[Related, ...] = ()


Shape = tuple[int | None, ...]  # None marks a dimension the trace could not know (never guessed)
SymShape = tuple[int | str, ...]  # a shape with named free sizes: ("B", 16, "H/2", "W/2") (#13)


@dataclass
class Hint:
    """The shapes one statement produced. `line`/`column` are where the label goes: the statement's end."""

    path: str
    line: int  # the statement's first line (what a user reads as "the line")
    end_line: int  # where the hint is placed: the end of the statement
    end_column: int  # 1-based column just after the statement's last character
    target: str
    shapes: list[Shape]  # every distinct shape, in the order first seen (a block used twice has two)
    dtype: str
    device: str
    producer: str | None = None  # the op or module that produced it ("Conv2d", "torch.flatten", "x.view")
    unknown: str | None = None
    symbolic: list[SymShape | None] = field(default_factory=list)  # parallel to `shapes`; [] when not known

    @property
    def shape(self) -> Shape:
        return self.shapes[0]

    def symbolic_of(self, index: int) -> SymShape | None:
        """The symbolic form of `shapes[index]`, None where the symbolic pass gave none (#13)."""
        return self.symbolic[index] if index < len(self.symbolic) else None


@dataclass
class LayerCall:
    line: int  # the user line (in `path_of_call`) where the layer met its input
    path: str
    inputs: list[Shape]
    outputs: list[Shape]


@dataclass
class LayerInfo:
    """An nn.Module instance the trace built, anchored at its constructor call in the source."""

    name: str  # qualified name in the traced model ("features.3", "fc1")
    type: str  # class name ("Linear")
    span: Span  # the constructor call `nn.Linear(400, 120)`
    params: int
    param_bytes: int
    flops: int | None  # one forward, as torch.utils.flop_counter counts it; None when not counted
    calls: list[LayerCall] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"p": 0.5, "training": True} for dropout
    model: str = ""  # the traced target this layer belongs to ("Net")


@dataclass
class ModelInput:
    name: str
    shape: Shape | None
    dtype: str | None
    note: str | None = None
    symbolic: SymShape | None = None


@dataclass
class TracedModel:
    """How one model of the file was traced: where its input came from (`input_source` is "directive",
    "example", "workspace" or "inferred"), the inputs themselves, and what was chosen for it."""

    name: str
    line: int
    input_source: str
    inputs: list[ModelInput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dims: dict[str, int] = field(default_factory=dict)  # each named size and its value in the traced example
    accepts: str | None = None  # the input sizes the model accepts, from the symbolic pass's guards


@dataclass
class FileReport:
    """All that is known about one file: what `check` prints and what the LSP publishes."""

    path: str
    hints: list[Hint] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)
    traced: list[str] = field(default_factory=list)  # targets traced from this file ("Net", "model")
    mode: str | None = None  # "meta", "fake", "cpu", "cuda" — how the shapes were obtained
    elapsed_ms: float | None = None
    models: list[TracedModel] = field(default_factory=list)  # the file's own traced models and their inputs

    def merge(self, other: FileReport) -> None:
        """Add what another report of the same file knows, each hint, finding and layer once: a file can be
        both checked itself and entered by another file's trace (a block imported by a model)."""
        self.hints = merge_hints([*self.hints, *other.hints])
        findings = {(f.code, f.span, f.message) for f in self.findings}
        self.findings += [f for f in other.findings if (f.code, f.span, f.message) not in findings]
        layers = {(x.model, x.name, x.span) for x in self.layers}
        self.layers += [x for x in other.layers if (x.model, x.name, x.span) not in layers]
        self.traced += [t for t in other.traced if t not in self.traced]
        known = {m.name for m in self.models}
        self.models += [m for m in other.models if m.name not in known]
        self.mode = other.mode or self.mode


def merge_hints(hints: Iterable[Hint]) -> list[Hint]:
    """One hint per statement and target, in the order first seen: the same statement reached twice (a block
    used by two models, a block file's own directive and a model that imports it) keeps every shape it met,
    in order. The one merge of hints of the house (the trace report, `FileReport.merge`, the editor)."""
    merged: dict[tuple[object, ...], Hint] = {}
    for hint in hints:
        key = (hint.path, hint.line, hint.end_line, hint.end_column, hint.target, hint.dtype)
        known = merged.get(key)
        if known is None:
            merged[key] = hint
        elif any(shape not in known.shapes for shape in hint.shapes):
            new = [i for i, shape in enumerate(hint.shapes) if shape not in known.shapes]
            shapes = [*known.shapes, *(hint.shapes[i] for i in new)]
            # the symbolic forms stay parallel to the shapes (#13): None where a trace gave none
            symbolic = [known.symbolic_of(i) for i in range(len(known.shapes))] + [hint.symbolic_of(i) for i in new]
            symbolic = symbolic if any(f is not None for f in symbolic) else []
            merged[key] = replace(known, shapes=shapes, unknown=known.unknown or hint.unknown, symbolic=symbolic)
    return list(merged.values())


def hint_label(shape: Shape, dtype: str, show_dtype: bool = True) -> str:
    """`[8, 16, 14, 14]`, `int64[8, 20]` when not float32, `?` for an unknown dimension."""
    dims = ", ".join("?" if d is None else str(d) for d in shape)
    prefix = dtype if show_dtype and dtype != "float32" else ""
    return f"{prefix}[{dims}]"


def to_json(obj: Any) -> Any:
    """Dataclasses and enums to plain JSON values (used by the CLI's JSON format and the tests)."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_json(v) for k, v in asdict(obj).items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj
