"""What the trace child records while a model runs: the tensors each instrumented statement binds, the
place in the source where each `nn.Module` was constructed, what each layer received and returned, and
layer/input mismatches (caught by a global forward pre-hook before the kernel's poor error message).

After a mismatch the pre-hook substitutes a right-shaped input, so the lines after it still get shapes
(a lenient trace); the mismatch itself becomes an SL10x finding. A module whose class has no `forward` yet
raises `MissingForward` (an information finding, not torch's confusing TypeError).

The trace timer never interrupts the code of this module (`in_recorder`): it sets `Recorder.expired`, which
stops the trace as soon as the statement is recorded, so a timeout cannot leave a half-made entry. Entries
are also written whole, in one step each.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from torch import nn

from shapelens.core import wire
from shapelens.core.wire import Site
from shapelens.trace.instrument import LOOP, Statement

FILE_ID = "file_id"  # the recording function's file: `getattr(module.__shapelens_record__, FILE_ID)`


@dataclass
class Mismatch:
    code: str
    module: nn.Module
    attr: str  # "in_features"
    declared: Any
    actual: Any
    factors: tuple[int, ...] | None  # the dims whose product gave `actual` (flatten of [4, 16, 6, 6])
    where: tuple[str, int] | None  # the user line where the layer met its input
    input_shape: tuple[int | None, ...]


@dataclass
class LayerUse:
    inputs: list[tuple[Any, ...]]
    outputs: list[tuple[Any, ...]]
    where: tuple[str, int] | None


def shape_of(tensor: torch.Tensor) -> list[int | None]:
    out: list[int | None] = []
    for dim in tensor.shape:
        try:  # a symbolic size (#13) gives its example value: int() would fix it there (a guard)
            out.append(int(dim.node.hint) if isinstance(dim, torch.SymInt) and dim.node.has_hint() else int(dim))
        except Exception:  # an unbacked symbolic size (data-dependent): unknown, never guessed
            out.append(None)
    return out


MAX_RETURNED = 8  # a returned tuple or list longer than this (a loop's outputs) gets no hint per element


def returned(target: str, value: Any, depth: int = 0) -> list[tuple[str, Any]]:
    """What a `return` binds, as a tuple assignment would: a tensor is `return`; a tuple or list's elements are
    `return[0]`, `return[1]`, ... (nested two deep: `return[1][0]`), each tensor among them one record."""
    if isinstance(value, tuple | list) and not isinstance(value, torch.Size):
        if len(value) > MAX_RETURNED or depth == 2:
            return []
        return [pair for i, item in enumerate(value) for pair in returned(f"{target}[{i}]", item, depth + 1)]
    return [(target, value)]


def dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


class Recorder:
    """One per trace child. `project` says which files are the user's (their frames count as lines)."""

    def __init__(self, is_project_file: Callable[[str], bool]) -> None:
        self.is_project_file = is_project_file
        self.files: list[tuple[str, list[Statement]]] = []  # index = file id in the generated code
        # (file id, sid) -> {"values": {target: [(shape, dtype, device)]}}
        self.records: dict[tuple[int, int], dict[str, list[tuple[tuple[int | None, ...], str, str]]]] = {}
        self.producers: dict[tuple[int, int], str] = {}
        self.active = False
        self.sites: dict[int, Site] = {}
        self.keep_alive: list[nn.Module] = []
        self.uses: dict[int, list[LayerUse]] = {}  # one entry per distinct call (line and shapes)
        self.mismatches: list[Mismatch] = []
        # a layer that met the wrong size ran on a stand-in: the input it really received (what its calls
        # report) and, for a norm layer, the shape its output keeps
        self.met: dict[int, torch.Tensor] = {}
        self.last: tuple[int, int] = (-1, 0)  # (file id, line) of the last recorded statement
        self.on_progress: Callable[[int, int], None] | None = None
        # set by the trace timer when it expired while we were busy: raises its timeout once we are done
        self.expired: Callable[[], None] | None = None
        # every store, in order: a loop compares the stores of its last two iterations (`Loop`)
        self.log: list[tuple[int, int, str, tuple[Any, ...]]] = []
        # (file id, sid of the loop) -> what the hover says about a loop cut short ("stopped after 2 of 999 ...")
        self.loop_notes: dict[tuple[int, int], str] = {}
        # the symbolic pass (trace/symbolic.py) sees each stored tensor too: ((file id, sid), target, tensor)
        self.on_store: Callable[[tuple[int, int], str, torch.Tensor], None] | None = None

    # -- statements ----------------------------------------------------------------------------------------

    def add_file(self, path: str, table: list[Statement]) -> int:
        self.files.append((path, table))
        return len(self.files) - 1

    def bind(self, file_id: int) -> tuple[Callable[..., None], Callable[..., Any]]:
        """The two functions the instrumented code of one file calls."""
        table = self.files[file_id][1]

        def record(sid: int, values: tuple[Any, ...]) -> None:
            if not self.active:
                return
            statement = table[sid]
            self._store(file_id, sid, statement, zip(statement.targets, values, strict=False))
            if self.expired is not None and not in_recorder(sys._getframe(1)):
                self.expired()  # the timeout, at the user's line we just recorded (unless we are nested)

        def record_return(sid: int, value: Any) -> Any:
            if self.active:
                self._store(file_id, sid, table[sid], returned("return", value))
                if self.expired is not None and not in_recorder(sys._getframe(1)):
                    self.expired()
            return value

        def loop(sid: int, iterable: Any) -> Any:
            """A `for`'s iterable, or for a `while` (iterable None) the object whose `again()` it asks first."""
            if not self.active:
                return _FOREVER if iterable is None else iterable
            return Loop(self, file_id, sid, table[sid].line, iterable, sys._getframe(1))

        setattr(record, LOOP, loop)  # the instrumented `for` calls `__shapelens_record__.loop(sid, it)`
        setattr(record, FILE_ID, file_id)  # whose table its statement ids index (a script adds to that table)
        return record, record_return

    def loop_notes_list(self) -> list[str]:
        """What the hover says about the loops the trace cut short since the last call (one target's trace:
        the notes are handed over once, so the next model starts without them), in source order."""
        notes = sorted(self.loop_notes.values(), key=lambda note: int(note.split()[3]))
        self.loop_notes.clear()
        return notes

    def _store(self, file_id: int, sid: int, statement: Statement, pairs: Any) -> None:
        key = (file_id, sid)
        self.last = (file_id, statement.line)
        if self.on_progress is not None:
            self.on_progress(file_id, statement.line)
        entry = self.records.get(key)
        for target, value in pairs:
            if not isinstance(value, torch.Tensor) or target == "_":
                continue
            # the item is complete before anything holds it, and each store is one step: an exception here
            # (the timer, a RecursionError at the stack's edge) never leaves a half-made entry behind
            item = (tuple(shape_of(value)), dtype_name(value), str(value.device))
            if self.on_store is not None:
                self.on_store(key, target, value)
            self.log.append((file_id, sid, target, item))
            if entry is None:
                entry = self.records[key] = {}
                self._note_producer(key, statement)
            seen = entry.get(target)
            if seen is None:
                entry[target] = [item]
            elif item not in seen:
                seen.append(item)

    def _note_producer(self, key: tuple[int, int], statement: Statement) -> None:
        """`self.conv1` → the layer's class name ("Conv2d"), looked up once per statement."""
        producer = statement.producer
        if producer and producer.startswith("self.") and producer.count(".") == 1:
            frame = sys._getframe(3)
            owner = frame.f_locals.get("self")
            layer = getattr(owner, producer[5:], None)
            if isinstance(layer, nn.Module):
                producer = type(layer).__name__
        elif producer and producer.isidentifier():  # `fc(a)` at a script's top level: the layer `fc` is
            frame = sys._getframe(3)
            layer = frame.f_locals.get(producer, frame.f_globals.get(producer))
            if isinstance(layer, nn.Module):
                producer = type(layer).__name__
        if producer:
            self.producers[key] = producer

    # -- where modules are built and used --------------------------------------------------------------

    def user_frame(self, frame: FrameType | None, skip_self: object = None) -> FrameType | None:
        while frame is not None:
            if skip_self is not None and frame.f_locals.get("self") is skip_self:
                frame = frame.f_back
                continue
            if self.is_project_file(frame.f_code.co_filename):
                return frame
            frame = frame.f_back
        return None

    def note_construction(self, module: nn.Module) -> None:
        frame = self.user_frame(sys._getframe(2), skip_self=module)
        if frame is None:
            return
        line, end_line, col, end_col = frame.f_lineno, frame.f_lineno, 0, 0
        try:
            positions = list(frame.f_code.co_positions())[frame.f_lasti // 2]
            if positions[0] is not None:
                line, end_line, col, end_col = positions  # type: ignore[assignment]
        except (AttributeError, IndexError):  # Python 3.10 has no co_positions: the line is enough
            pass
        # co_positions gives the columns of the AST the code was compiled from, and the child compiles the
        # tree `core.source.parse` made, whose columns are characters: so these are characters too, on a
        # non-ASCII line as well (tests/test_line_model.py holds two layers on one such line).
        self.sites[id(module)] = Site(frame.f_code.co_filename, line, col or 0, end_line or line, end_col or 0)
        self.keep_alive.append(module)  # ids stay unique while we hold them

    def where(self) -> tuple[str, int] | None:
        frame = self.user_frame(sys._getframe(2))
        return (frame.f_code.co_filename, frame.f_lineno) if frame else None

    # -- global module hooks ---------------------------------------------------------------------------

    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if type(module).forward is _UNIMPLEMENTED:
            raise MissingForward(type(module).__name__)  # torch would say "_forward_unimplemented() got ..."
        if not self.active or not args or not isinstance(args[0], torch.Tensor):
            return None
        for kinds, check in CHECKS:
            # a subclass with a forward of its own takes other inputs (OPT's positional Embedding takes the
            # attention mask): only torch's own forward is checked, never a false SL10x (h4, #9)
            stock = (getattr(type(module).forward, "__module__", None) or "").startswith(("torch.", "shapelens."))
            if isinstance(module, kinds) and stock:
                fixed = check(self, module, args[0])
                if fixed is None:
                    return None
                self.met[id(module)] = args[0]
                return (fixed, *args[1:])
        return None

    def forward_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if not self.active:
            return None
        original = self.met.pop(id(module), None)
        replace = original is not None and isinstance(module, SHAPE_KEEPING)
        if original is not None:
            args = (original, *args[1:])
        if replace:
            # a norm layer ran on a stand-in of its declared size; what flows on has the size it really
            # met, so the layers after it are checked against the truth, not against our stand-in
            output = original.new_zeros(original.shape)  # type: ignore[union-attr]
        # only a real tensor's: an fx Proxy answers any attribute with a new Proxy, whose truth fx refuses
        factors = getattr(args[0], "_shapelens_factors", None) if args and isinstance(args[0], torch.Tensor) else None
        if factors and isinstance(output, torch.Tensor) and output.shape == args[0].shape:
            output._shapelens_factors = factors  # type: ignore[attr-defined]  # through dropout, activations
        inputs = [tuple(shape_of(a)) for a in args if isinstance(a, torch.Tensor)]
        outputs = [tuple(shape_of(o)) for o in _tensors(output)]
        use = LayerUse(inputs, outputs, self.where())
        calls = self.uses.setdefault(id(module), [])
        if use not in calls:  # a block in a loop calls its layers the same way each time: keep one
            calls.append(use)
        return output if replace else None

    def mismatch(self, code: str, module: nn.Module, attr: str, declared: Any, actual: Any, x: torch.Tensor) -> None:
        factors = getattr(x, "_shapelens_factors", None)
        self.mismatches.append(
            Mismatch(code, module, attr, declared, actual, factors, self.where(), tuple(shape_of(x)))
        )


# -- loops that stop once their shapes repeat ---------------------------------------------------------------


class _Forever:
    """A `while` loop's companion when nothing is recorded: it never ends the loop."""

    def again(self) -> bool:
        return True


_FOREVER = _Forever()


def _stoppable(iterable: Any) -> str | None:
    """Whether a loop over `iterable` may end early once an iteration repeats the shapes of the one before:
    "steps" where the items differ only in value (a range, a tensor's rows, equal-shaped tensors, enumerate
    or zip of those), "batches" for a DataLoader (its first batch stands for the rest). A loop over layers,
    configs or kernel sizes runs whole: the next item may change the shapes though the last two did not."""
    if isinstance(iterable, range | torch.Tensor):
        return "steps"
    if isinstance(iterable, torch.utils.data.DataLoader):
        return "batches"
    if isinstance(iterable, list | tuple) and iterable and all(isinstance(v, torch.Tensor) for v in iterable):
        first = iterable[0].shape
        return "steps" if all(v.shape == first for v in iterable) else None
    if isinstance(iterable, enumerate | zip):
        try:
            inner = iterable.__reduce__()[1]  # enumerate: (iterator, start); zip: (iterators...)
        except Exception:
            return None
        parts = inner[:1] if isinstance(iterable, enumerate) else inner
        kinds = {_iterator_kind(p) for p in parts}
        return "steps" if kinds == {"steps"} else ("batches" if "batches" in kinds and None not in kinds else None)
    return None


def _iterator_kind(iterator: Any) -> str | None:
    if type(iterator).__name__ == "range_iterator":
        return "steps"
    if type(iterator).__name__.startswith("_") and "DataLoaderIter" in type(iterator).__name__:
        return "batches"
    try:
        reduced = iterator.__reduce__()  # list/tuple iterators: (iter, (sequence,), index)
        return _stoppable(reduced[1][0]) if reduced[0] is iter else None
    except Exception:
        return None


def _smaller_last_batch(iterator: Any) -> tuple[list[int], int] | None:
    """A DataLoader iterator's last, smaller batch: its indices and the number of samples, where the loader's
    size is known and its last batch is smaller than the others (not `drop_last`). Any indices of that count
    give its shapes; the last ones are what a sequential sampler would draw."""
    sampler = getattr(iterator, "_index_sampler", None)
    if not isinstance(sampler, torch.utils.data.BatchSampler) or sampler.drop_last:
        return None
    try:
        count, size = len(sampler.sampler), int(sampler.batch_size)  # type: ignore[arg-type]
    except Exception:  # an iterable-style dataset: its size is not known
        return None
    rest = count % size
    return (list(range(count - rest, count)), count) if rest and count > size else None


def _length(iterable: Any) -> int | None:
    if isinstance(iterable, enumerate | zip):
        try:
            parts = iterable.__reduce__()[1]
            parts = parts[:1] if isinstance(iterable, enumerate) else parts
            lengths = [_iterator_length(p) for p in parts]
            return None if None in lengths else min(lengths)  # type: ignore[type-var]
        except Exception:
            return None
    try:
        return len(iterable)
    except Exception:
        return None


def _iterator_length(iterator: Any) -> int | None:
    try:
        return int(iterator.__length_hint__())
    except Exception:
        return None


class Loop:
    """The iterator an instrumented `for` runs over. After each iteration it compares the stores of that
    iteration with those of the one before; once they are equal (and the loop is one whose items differ
    only in value, `_stoppable`) the loop ends as if its items had run out: what follows sees the same
    shapes, at a fraction of the time (999 LSTMCell steps on meta: 2 run). A list the loop grew by the same
    count each time is grown on by copies of its last items for the iterations not run, so
    `torch.stack(outputs)` after the loop still has all 999. A DataLoader's loop runs its first batch only."""

    def __init__(self, recorder: Recorder, file_id: int, sid: int, line: int, iterable: Any, frame: FrameType) -> None:
        self.recorder = recorder
        self.key = (file_id, sid)
        self.line = line
        self.kind = "steps" if iterable is None else _stoppable(iterable)  # None: a `while` (`again`)
        if iterable is None:
            iterable = itertools.count()
        self.total = _length(iterable) if self.kind else None
        # a DataLoader draws its indices (and a shuffle's seed) with tensors of the default device: on meta
        # they have no values, so its sampler runs on the CPU; the batches are what its dataset holds
        self.sampling = torch.device("cpu") if self.kind == "batches" else nullcontext()
        with self.sampling:
            self.iterator = iter(iterable)
        # a training loop's first batch, then its last, smaller one (the size `drop_last` would drop): the lines
        # that see both show both shapes
        self.last = self._last_batch() if self.kind == "batches" else None
        self.frame = frame
        self.count = 0
        self.start = len(recorder.log)
        self.previous: list[Any] | None = None
        self.sizes: list[dict[str, tuple[int, int]]] = []

    def __iter__(self) -> Loop:
        return self

    def __next__(self) -> Any:
        if self.count and self.kind is not None:
            current = self.recorder.log[self.start :]
            self.start = len(self.recorder.log)
            self.sizes = [*self.sizes[-2:], self._list_sizes()]
            if self.kind == "batches" and self.last is not None and self.count == 1:
                self.count += 1
                return self._take_last()
            if self.kind == "batches" or (current and current == self.previous):
                self._stop()
                raise StopIteration
            self.previous = current
        with self.sampling:
            value = next(self.iterator)
        if self.count == 0 and self.kind is not None:
            self.sizes = [self._list_sizes()]
        self.count += 1
        return value

    def _last_batch(self) -> tuple[Any, list[int], int] | None:
        """(the DataLoader iterator, the last batch's indices, the sample count), for a plain loader or one in
        `enumerate`, whose last batch is smaller than its first."""
        iterator = self.iterator
        if isinstance(iterator, enumerate):
            try:
                iterator = iterator.__reduce__()[1][0]
            except Exception:
                return None
        found = _smaller_last_batch(iterator)
        return (iterator, *found) if found is not None else None

    def _take_last(self) -> Any:
        assert self.last is not None
        iterator, indices, count = self.last
        with self.sampling:
            batch = iterator._collate_fn([iterator._dataset[i] for i in indices])
        if isinstance(self.iterator, enumerate):  # (the last batch's number, the batch)
            return (-(-count // iterator._index_sampler.batch_size) - 1, batch)
        return batch

    def again(self) -> bool:
        """A `while` loop's next turn: False once an iteration repeated the shapes of the one before."""
        try:
            next(self)
        except StopIteration:
            return False
        return True

    def _list_sizes(self) -> dict[str, tuple[int, int]]:
        try:
            names = self.frame.f_locals
            return {name: (id(v), len(v)) for name, v in list(names.items()) if type(v) is list}
        except Exception:
            return {}

    def _stop(self) -> None:
        remaining = (self.total - self.count) if self.total is not None else None
        if remaining is not None and remaining <= 0:
            return
        if self.kind == "batches" and self.last is not None:
            _, indices, count = self.last
            note = (f"loop at line {self.line} traced for its first batch and its last, smaller one "
                    f"({len(indices)} of {count} samples)")  # fmt: skip
        elif self.kind == "batches":
            note = f"loop at line {self.line} traced for its first batch only"
        else:
            of = f" of {self.total}" if self.total is not None else ""
            note = f"loop at line {self.line} stopped after {self.count}{of} iterations: the shapes repeat"
        self.recorder.loop_notes[self.key] = note
        if remaining and len(self.sizes) == 3:
            self._grow_lists(remaining)

    def _grow_lists(self, remaining: int) -> None:
        """Lists the last two iterations each grew by the same count get that many copies of their last items
        per iteration not run: what is stacked or concatenated after the loop has its full length."""
        first, before, after = self.sizes
        names = self.frame.f_locals
        for name, (ident, size) in after.items():
            value = names.get(name)
            if type(value) is not list or id(value) != ident or len(value) != size:
                continue
            sizes = [s.get(name) for s in (first, before)]
            if any(s is None or s[0] != ident for s in sizes):
                continue
            step = size - sizes[1][1]  # type: ignore[index]
            if step > 0 and sizes[1][1] - sizes[0][1] == step:  # type: ignore[index]  # the same growth each time
                value.extend(value[-step:] * remaining)


def mismatch_records(recorder: Recorder) -> list[wire.Mismatch]:
    """The recorder's mismatches as the wire carries them (layer class, construction site, the call)."""
    return [
        wire.Mismatch(
            m.code, type(m.module).__name__, recorder.sites.get(id(m.module)), m.attr, m.declared, m.actual,
            list(m.factors) if m.factors else None, list(m.where) if m.where else None, list(m.input_shape),
        )
        for m in recorder.mismatches
    ]  # fmt: skip


_UNIMPLEMENTED = nn.Module.forward  # what a subclass that has not written its `forward` yet inherits


class MissingForward(Exception):
    """A module was called whose class has no `forward` yet (a file in the middle of being written)."""

    def __init__(self, class_name: str) -> None:
        super().__init__(f"{class_name} has no forward yet")
        self.class_name = class_name


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    return []


# -- the checks: one per layer family, each returning a right-shaped substitute input after a mismatch -----


def _check_linear(rec: Recorder, module: nn.Linear, x: torch.Tensor) -> torch.Tensor | None:
    if isinstance(module, nn.LazyLinear) or x.dim() == 0:
        return None
    # the weight is the truth: `fc.in_features = n` after construction changes only the attribute (SL204)
    expected = int(module.weight.shape[1])
    if x.shape[-1] == expected:
        return None
    rec.mismatch("SL101", module, "in_features", expected, int(x.shape[-1]), x)
    return x.new_zeros((*x.shape[:-1], expected))


def _channel_check(code: str, attr: str, spatial: int) -> Callable[[Recorder, Any, torch.Tensor], Any]:
    def check(rec: Recorder, module: Any, x: torch.Tensor) -> torch.Tensor | None:
        declared = getattr(module, attr)
        if declared == 0 or x.dim() not in (spatial + 1, spatial + 2):
            return None  # a lazy module, or a rank error the kernel reports (SL001)
        dim = 1 if x.dim() == spatial + 2 else 0
        if x.shape[dim] == declared:
            return None
        rec.mismatch(code, module, attr, declared, int(x.shape[dim]), x)
        shape = list(x.shape)
        shape[dim] = declared
        return x.new_zeros(shape)

    return check


def _dim1_check(attr: str) -> Callable[[Recorder, Any, torch.Tensor], torch.Tensor | None]:
    """BatchNorm's `num_features`, GroupNorm's `num_channels`: the size of dim 1 (channels)."""

    def check(rec: Recorder, module: Any, x: torch.Tensor) -> torch.Tensor | None:
        declared = getattr(module, attr)
        if x.dim() < 2 or declared == 0 or x.shape[1] == declared:
            return None  # 0: a lazy module
        rec.mismatch("SL103", module, attr, declared, int(x.shape[1]), x)
        shape = list(x.shape)
        shape[1] = declared
        return x.new_zeros(shape)

    return check


def _check_layernorm(rec: Recorder, module: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor | None:
    declared = tuple(module.normalized_shape)
    if tuple(x.shape[-len(declared) :]) == declared:
        return None
    actual = tuple(int(d) for d in x.shape[-len(declared) :])
    rec.mismatch("SL103", module, "normalized_shape", declared, actual, x)
    return x.new_zeros((*x.shape[: x.dim() - len(declared)], *declared))


def _check_embedding(rec: Recorder, module: nn.Embedding, x: torch.Tensor) -> torch.Tensor | None:
    if not x.is_floating_point():
        return None
    rec.mismatch("SL105", module, "dtype", "int64", dtype_name(x), x)
    return torch.zeros(x.shape, dtype=torch.long, device=x.device)


def _check_rnn(rec: Recorder, module: nn.RNNBase, x: torch.Tensor) -> torch.Tensor | None:
    if x.dim() == 0 or x.shape[-1] == module.input_size:
        return None
    rec.mismatch("SL104", module, "input_size", module.input_size, int(x.shape[-1]), x)
    return x.new_zeros((*x.shape[:-1], module.input_size))


SHAPE_KEEPING = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)

CHECKS: list[tuple[type | tuple[type, ...], Callable[[Recorder, Any, torch.Tensor], torch.Tensor | None]]] = [
    (nn.Linear, _check_linear),
    ((nn.Conv1d, nn.ConvTranspose1d), _channel_check("SL102", "in_channels", 1)),
    ((nn.Conv2d, nn.ConvTranspose2d), _channel_check("SL102", "in_channels", 2)),
    ((nn.Conv3d, nn.ConvTranspose3d), _channel_check("SL102", "in_channels", 3)),
    (nn.modules.batchnorm._BatchNorm, _dim1_check("num_features")),
    (nn.GroupNorm, _dim1_check("num_channels")),
    (nn.LayerNorm, _check_layernorm),
    (nn.Embedding, _check_embedding),
    (nn.RNNBase, _check_rnn),
]


def in_recorder(frame: FrameType | None) -> bool:
    """Whether the recorder is on this stack: the trace timer waits for it to finish its bookkeeping (a
    timeout raised half-way through would leave its tables inconsistent)."""
    while frame is not None:
        if frame.f_code.co_filename == _THIS_FILE:
            return True
        frame = frame.f_back
    return False


def note_flatten_factors(out: Any, source: torch.Tensor) -> None:
    """Mark a flattened tensor with the dims whose product became its last dim ([4, 16, 6, 6] → (16, 6, 6)),
    so a Linear fix can read `16 * 6 * 6` instead of `576`."""
    if not isinstance(out, torch.Tensor) or out.dim() == 0 or source.dim() <= out.dim():
        return
    if any(isinstance(d, torch.SymInt) for d in (*out.shape, *source.shape)):
        return  # int() of a symbolic size would fix it to its example value (the symbolic pass, #13)
    try:
        last = int(out.shape[-1])
        dims = [int(d) for d in source.shape]
    except Exception:
        return
    for start in range(len(dims) - 1):
        tail = dims[start:]
        if len(tail) >= 2 and math.prod(tail) == last:
            out._shapelens_factors = tuple(tail)  # type: ignore[attr-defined]
            return


_THIS_FILE = Recorder._store.__code__.co_filename
