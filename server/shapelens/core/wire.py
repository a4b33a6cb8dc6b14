"""The messages that cross the process boundary between the editor's (or CLI's) process and the trace worker:
the plan of one trace, and what the trace child reports for each model. One dataclass per message, an enum per
closed set, serialised here and nowhere else (`to_wire` / `from_wire`).

Units are those of the trace: lines 1-based; a `Site`'s columns 0-based characters, its `end_col` exclusive;
shapes lists of sizes with None for a size that depends on values. A plan's items (`TargetSpec.setup`, `model`,
`args`, `kwargs`) stay JSON objects, one of `{"node": [line, col, end_line, end_col]}` (a source expression or
statement, addressed by `core.syntax.node_key`), `{"code": "..."}` (generated code) or `{"tensor": dims,
"dtype": "float32"}`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

Item = dict[str, Any]
Dims = list[int | None]
# a shape with named sizes (#13): an int where the model fixes the size, a label where it is free ("B", "H/4 - 3");
# labels are written by `trace/symbolic.py` and read by `core/symbolic.py` (nothing else parses them)
SymDims = list[int | str]


class _Name(str, enum.Enum):
    """A closed set of names that reads as its value in messages (`f"{kind}"` is "shape", not "ErrorKind.SHAPE")."""

    def __str__(self) -> str:
        return self.value  # type: ignore[no-any-return]


class InputSource(_Name):
    """Where a model's input came from: the user said it, or the model did (a guess never accuses the code)."""

    DIRECTIVE = "directive"  # `# shapelens: x=(8, 3, 32, 32)`
    EXAMPLE = "example"  # an example call in the file
    WORKSPACE = "workspace"  # a call of the class in another file of the workspace (`GPT(conf)` in train.py)
    INFER = "inferred"  # made up from the model itself: its layers, its constructor's defaults and annotations
    NONE = "none"  # no input known: not traced (SL003)

    @property
    def user_given(self) -> bool:
        """The user's own code or words fixed this input: a failure with it is the code's error. Otherwise the
        input (or the constructor's arguments) is our guess, and a guess never accuses the code."""
        return self in (InputSource.DIRECTIVE, InputSource.EXAMPLE)


class Event(_Name):
    """The trace child's events to the worker, one JSON line each."""

    FILE = "file"  # a project file was loaded: {"id", "path"} (progress reports name files by id)
    IMPORTS = "imports"  # the library modules the child imported: {"modules"}
    START = "start"  # a target's trace began: {"name", "time"}
    TARGET = "target"  # a target's `TargetResult`
    REFUSED = "refused"  # an early sibling's trace needs FakeTensorMode: traced again elsewhere (early_sibling.py)


class Status(_Name):
    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"  # the target is no nn.Module after all
    COVERED = "covered"  # a guessed-input target already traced inside a parent model (`covered_by`)


class ErrorKind(_Name):
    SHAPE = "shape"  # the forward raised (SL001)
    TIMEOUT = "timeout"  # the timer stopped it, or loading the file did not finish (SL002)
    RECURSION = "recursion"  # a forward that calls itself without end (SL002)
    NOINPUT = "noinput"  # no input is known for the model (SL003)
    BUILD = "build"  # building the model or loading its file failed (SL004)
    CRASH = "crash"  # the trace process died (SL004)
    DATADEP = "datadep"  # a size depends on values a shape-only trace does not have (SL004)
    EXIT = "exit"  # user code called sys.exit() (SL004)
    MEMORY = "memory"  # over the memory cap (SL005)
    NOFORWARD = "noforward"  # the class has no forward yet (SL008)
    REFUSED = "refused"  # the sandbox refused what user code tried (a write, a socket, a process) (SL009)
    GUESS = "guess"  # a trace with a guessed input or constructor failed in a way the guess may cause (info)
    UNTRACED = "untraced"  # a script's statements skipped: a name they read is unknown, and why (SL011, info)


@dataclass(frozen=True)
class TargetSpec:
    """One model to trace: how to build it and what to call it with."""

    name: str
    kind: str  # "class" | "sequential"
    line: int
    input_source: InputSource
    setup: list[Item]
    model: Item | None
    args: list[Item]
    kwargs: dict[str, Item]
    infer_from: str | None  # not None: the child makes the inputs `forward` lacks from the built model
    alternatives: list[Item] = field(default_factory=list)  # more constructor candidates, tried in order
    synthesized: list[str] = field(default_factory=list)  # what was made up for the constructor ("n_layer=2")
    prior: list[TracedInput] = field(default_factory=list)  # the inputs the last trace chose: tried first


@dataclass(frozen=True)
class TracePlan:
    """What the trace child runs for one file."""

    file: str
    root: str
    module: str  # the dotted name the file is executed under
    source: str
    device: str
    timeout: float
    memory_mb: int
    flops: bool
    symbolic: bool  # the symbolic pass after each target's plain trace (#13)
    keep: list[list[int | None]]  # node keys of the top-level statements that may run
    targets: list[TargetSpec]
    # the file's top level run as a script after the targets (`analysis/script.py`): {"node": key} to run,
    # {"node": key, "skip": why} not to ("inner": true where it sits in a block); [] for no script
    script: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class Site:
    """Where a module was constructed: the constructor call's span."""

    path: str
    line: int
    col: int
    end_line: int
    end_col: int


@dataclass(frozen=True)
class Record:
    """The tensors one statement bound to one name (every distinct shape, in the order first seen)."""

    path: str
    line: int
    end_line: int
    end_column: int
    target: str
    shapes: list[Dims]
    dtype: str
    device: str
    producer: str | None = None
    unknown: str | None = None
    # the symbolic pass's form of each of `shapes` (same order; None where it has none); [] when it did not run
    symbolic: list[SymDims | None] = field(default_factory=list)


@dataclass(frozen=True)
class LayerCallRecord:
    path: str | None
    line: int | None
    inputs: list[Dims]
    outputs: list[Dims]


@dataclass(frozen=True)
class LayerRecord:
    name: str
    type: str
    site: Site
    params: int | None
    bytes: int | None
    flops: int | None
    calls: list[LayerCallRecord]
    extra: dict[str, Any]


@dataclass(frozen=True)
class Mismatch:
    """A layer that met an input its declared size does not fit (SL101-SL105)."""

    code: str
    layer: str
    site: Site | None
    attr: str
    declared: Any
    actual: Any
    factors: list[int] | None
    where: list[Any] | None  # [path, line] of the call
    input_shape: Dims
    # what the symbolic pass says of it: "fc1 expects 400 = 16·5·5 features; it gets 16·(H/4 - 3)², which is
    # 400 only for H = 32" (None when it did not run)
    symbolic: str | None = None


@dataclass(frozen=True)
class TraceError:
    kind: ErrorKind
    message: str
    path: str | None = None
    line: int | None = None
    stage: str | None = None  # "import" | "build" | "forward"
    operands: list[dict[str, Any]] = field(default_factory=list)
    exception: str | None = None
    traceback: str | None = None
    note: str | None = None
    caller_line: int | None = None  # when `path` is another file: the checked file's line that led there


@dataclass(frozen=True)
class TracedInput:
    """One argument a model was traced with: what the hover and JSON show, so a guess reads as a guess."""

    name: str  # the forward parameter ("x", "hidden")
    shape: Dims | None  # None for a non-tensor (a tuple of tensors shows its first)
    dtype: str | None
    note: str | None = None  # why this size ("the size fc1 accepts", "from Embedding: indices")
    symbolic: SymDims | None = None  # ["B", 3, "H", "W"] (#13)


@dataclass(frozen=True)
class TargetResult:
    """What the trace of one model produced."""

    name: str
    status: Status
    mode: str | None  # "meta", "fake", "cpu", "cuda"; None when the process died before saying
    records: list[Record] = field(default_factory=list)
    layers: list[LayerRecord] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    error: TraceError | None = None
    elapsed_ms: float | None = None
    inputs: list[TracedInput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the trace chose or cut short, said once in the hover
    covered_by: str | None = None  # Status.COVERED: the parent target whose trace reached this one
    errors: list[TraceError] = field(default_factory=list)  # a script's failures after `error` (SCRIPT_TARGET)
    # the symbolic pass (#13): each named size and the value the traced example gave it ({"B": 2, "H": 32}),
    # and the input sizes the model accepts, read from the guards ("x: [B, 3, H, W] with H, W ≡ 0 mod 4")
    dims: dict[str, int] = field(default_factory=dict)
    accepts: str | None = None
    # where the traced inputs came from when it is not the plan's source: an example whose set-up needs data
    # the trace cannot have falls back to inputs inferred from the model (INFER); None = as the plan said
    input_source: InputSource | None = None


@dataclass(frozen=True)
class PoolSetup:
    """The CLI's first line to a pool's first worker (`check --jobs N`), once its first plan is built: the
    warm-up parts to run before the pool forks (core/warm.py), and whether to fork the early siblings first."""

    warm: list[str]
    early: bool


# the target name of a file's top level traced as a script (`TracePlan.script`): Python's name for it
SCRIPT_TARGET = "<module>"


@dataclass(frozen=True)
class TraceResult:
    """The worker's answer to one plan: a result per target, and the project files the trace entered."""

    targets: list[TargetResult]
    files: list[str]
    refused: bool = False  # nothing traced: it needs a worker warm for FakeTensorMode (trace/early_sibling.py)


def to_wire(message: Any) -> Any:
    """A message as plain JSON values."""
    if isinstance(message, enum.Enum):
        return message.value
    if dataclasses.is_dataclass(message) and not isinstance(message, type):
        return {f.name: to_wire(getattr(message, f.name)) for f in dataclasses.fields(message)}
    if isinstance(message, list | tuple):
        return [to_wire(v) for v in message]
    if isinstance(message, dict):
        return {k: to_wire(v) for k, v in message.items()}
    return message


T = TypeVar("T")


def from_wire(cls: type[T], data: Any) -> T:
    """The message of type `cls` that `to_wire` made `data` from. Unknown keys are ignored (a newer worker)."""
    return _decode(cls, data)  # type: ignore[no-any-return]


def _decode(hint: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(options[0], data) if len(options) == 1 else data
    if origin is list:
        (inner,) = typing.get_args(hint)
        return [_decode(inner, v) for v in data]
    if origin is tuple:  # a report's shapes and fixes (the results cache reads reports back)
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in data)
        return tuple(_decode(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        _, inner = typing.get_args(hint)
        return {k: _decode(inner, v) for k, v in data.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints, known = _fields(hint)
        return hint(**{k: _decode(hints[k], v) for k, v in data.items() if k in known})
    return data


@functools.cache
def _fields(cls: Any) -> tuple[dict[str, Any], frozenset[str]]:
    """A message class's field types and names, read once: `typing.get_type_hints` evaluates every annotation's
    text on each call, which was most of the time a trace result took to decode (#12)."""
    return typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls))
