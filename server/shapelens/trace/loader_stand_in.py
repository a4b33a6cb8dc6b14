"""A `DataLoader` over a dataset the trace cannot read (a refused download, a missing file, torchvision not
installed): a stand-in loader whose one batch is made from the model's inferred input, so that the loop over
it is traced all the same (`trace/script_run.py` binds it where `loader = DataLoader(dataset, ...)` could not
run).

Which part of the batch is what is read from the code that uses it: the loop's target (`for x, y in loader`,
`for i, (x, y) in enumerate(loader)`, `for batch in loader: x, y = batch`, `x, y = next(iter(loader))`), then
the first call of a module with a part of the batch (`model(x)`: that part is the model's input, as
`trace/inference.py` infers it from the built model, its batch the loader's `batch_size`), and a class-index
loss (`F.cross_entropy(out, y)`, `nn.NLLLoss()(out, y)`: that part is int64 class indices, shaped as the
model's output without its class dim). Any other part stays unknown: an `UnknownPart` that nothing may use,
and the top-level statements that would use it are left out where they stand (`unknown_statements`).

Nothing is guessed into an error: a model input that does not run on the model gives no batch at all.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.nn.modules.loss import _Loss

from shapelens.core.source import Source, parse
from shapelens.core.syntax import bound_names, loaded_names, node_key
from shapelens.core.wire import Record
from shapelens.trace import solve
from shapelens.trace.inference import Dim, Guess, NoInput, infer
from shapelens.trace.model_run import library_candidates, make_tensor
from shapelens.trace.recording import Recorder

Path = tuple[int | str, ...]  # where a part sits in the batch: tuple positions and dict keys (`batch["image"]`)
Lookup = Callable[[str], Any]
_MISSING = object()
_CLASS_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)
_CLASS_LOSS_FUNCTIONS = ("cross_entropy", "nll_loss")
ORIGIN = "batch from the model's inferred input"


class Unreadable(Exception):
    """The code asked the stand-in what only the dataset knows (its length, its samples)."""


class UnknownPart:
    """A part of the batch whose shape nothing in the code says (a regression target, a mask)."""

    def __init__(self, why: str) -> None:
        object.__setattr__(self, "why", why)

    def __getattr__(self, name: str) -> Any:
        raise Unreadable(f"this part of the batch is unknown: {self.why}")

    def __repr__(self) -> str:
        return "UnknownPart"


def is_data_loader_call(node: ast.AST) -> bool:
    """`DataLoader(...)`, `torch.utils.data.DataLoader(...)`, `data.DataLoader(...)`."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "DataLoader") or (
        isinstance(func, ast.Attribute) and func.attr == "DataLoader"
    )


def batch_size(call: ast.Call, lookup: Lookup, unknown: set[str]) -> int:
    """The loader's batch size: `batch_size=` (or the second positional argument), evaluated when it reads no
    unknown name (`args.batch_size`), else from a `**kwargs` dict that holds it; DataLoader's default is 1."""
    expr: ast.expr | None = call.args[1] if len(call.args) > 1 else None
    for keyword in call.keywords:
        if keyword.arg == "batch_size":
            expr = keyword.value
        elif keyword.arg is None and isinstance(keyword.value, ast.Name) and keyword.value.id not in unknown:
            held = lookup(keyword.value.id)
            if isinstance(held, dict) and isinstance(held.get("batch_size"), int):
                return int(held["batch_size"])
    if expr is None:
        return 1
    if isinstance(expr, ast.Constant) and isinstance(expr.value, int) and expr.value > 0:
        return int(expr.value)
    value = resolve(expr, lookup) if not (loaded_names(expr) & unknown) else _MISSING
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 2


def resolve(expr: ast.expr, lookup: Lookup) -> Any:
    """The value of a name or a dotted name (`model`, `self.net`, `F.cross_entropy`), without calling anything
    of the user's; `_MISSING` when it is something else or not bound."""
    if isinstance(expr, ast.Name):
        return lookup(expr.id)
    if isinstance(expr, ast.Attribute):
        owner = resolve(expr.value, lookup)
        if owner is _MISSING:
            return _MISSING
        try:
            return inspect_attribute(owner, expr.attr)
        except Exception:
            return _MISSING
    return _MISSING


def inspect_attribute(owner: Any, name: str) -> Any:
    if isinstance(owner, nn.Module):  # submodules live in `_modules`: no property of the user's runs
        for store in ("_modules", "_parameters", "_buffers"):
            held = owner.__dict__.get(store, {})
            if name in held:
                return held[name]
    return getattr(owner, name)


# -- reading the code that uses the batch -------------------------------------------------------------------


@dataclass
class Roles:
    """What each part of the batch is, found in the code that uses it."""

    leaves: dict[Path, str]  # the names the loop or assignment binds, by where they sit in the batch
    # and those the code unpacks from them (`inputs, labels = data`): (line, name) -> part
    unpacked: dict[tuple[int, str], Path] = field(default_factory=dict)
    inputs: dict[Path, int] = field(default_factory=dict)  # part -> which input of the model
    targets: set[Path] = field(default_factory=set)  # class indices for a loss
    model: nn.Module | None = None
    model_text: str = ""
    carried: set[Path] = field(default_factory=set)  # parts an earlier use of the loader made known
    loss_text: str = ""
    # parts another module is called with first (cyclegan's `G_AB(real_B)` beside `G_BA(real_A)`): that module's
    # input, and which of its inputs
    others: dict[Path, tuple[nn.Module, str, int, int]] = field(default_factory=dict)  # and how many arguments

    @property
    def names(self) -> dict[Path, str]:
        """Each named part, by its first name."""
        out = dict(self.leaves)
        for (_, name), path in self.unpacked.items():
            out.setdefault(path, name)
        return out

    def unknown(self) -> dict[Path, str]:
        known = {*self.inputs, *self.targets, *self.carried, *self.others}
        return {p: n for p, n in self.names.items() if not any(k[: len(p)] == p for k in known)}


def _leaves(target: ast.expr, path: Path = ()) -> dict[Path, str]:
    if isinstance(target, ast.Name):
        return {path: target.id}
    if isinstance(target, ast.Tuple | ast.List):
        out: dict[Path, str] = {}
        for index, element in enumerate(target.elts):
            if isinstance(element, ast.Starred):
                return out  # `x, *rest`: the parts after it have no fixed place
            out.update(_leaves(element, (*path, index)))
        return out
    return {}


def _in_order(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of a block, nested ones after their header, in source order."""
    for stmt in body:
        yield stmt
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list) and not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from _in_order(inner)
        for handler in getattr(stmt, "handlers", []):
            yield from _in_order(handler.body)


def _derive(stmt: ast.stmt, derived: dict[str, Path], unpacked: dict[tuple[int, str], Path]) -> None:
    """Names an assignment binds from a part of the batch: `x, y = batch` (each its element), `x = batch[0]`
    (both kept in `unpacked`), `x = x.to(device)` (the same part)."""
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return
    target, value = stmt.targets[0], stmt.value
    if isinstance(value, ast.Name) and value.id in derived:
        for sub, name in _leaves(target).items():
            derived[name] = unpacked.setdefault((stmt.lineno, name), (*derived[value.id], *sub))
        return
    if isinstance(target, ast.Name) and _part_of(value, derived) is not None and isinstance(value, ast.Subscript):
        derived[target.id] = _part_of(value, derived)  # type: ignore[assignment]
        unpacked.setdefault((stmt.lineno, target.id), derived[target.id])
        return
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        pairs = list(zip(target.elts, value.elts, strict=True))  # `x, y = x.to(d), y.to(d)`
    else:
        pairs = [(target, value)]
    for part_target, part_value in pairs:
        source = _part_of(part_value, derived)
        if source is not None and isinstance(part_target, ast.Name):
            derived[part_target.id] = source
            if len(source) > len(derived.get(_root(part_value), ())):  # `real_B = Variable(batch["B"].type(T))`
                unpacked.setdefault((stmt.lineno, part_target.id), source)


def _root(expr: ast.expr) -> str:
    """The name a part is read from in `expr` (`batch` in `Variable(batch["B"].type(T))`), or ""."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            return node.value.id
    return ""


# what an expression reads of a tensor without its data: its size, not its values (`imgs.shape[0]`, `len(x)`)
_ONLY_SIZE = {"shape", "size", "dim", "ndim", "ndimension", "numel", "device", "dtype"}


def _size_reads(expr: ast.expr) -> set[int]:
    """The names in `expr` read only for a size: noise sized by the batch (`torch.randn(imgs.shape[0], 100)`, a
    GAN's latent) is made from no part of it."""
    out = set()
    for node in ast.walk(expr):
        if isinstance(node, ast.Attribute) and node.attr in _ONLY_SIZE and isinstance(node.value, ast.Name):
            out.add(id(node.value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" and node.args:
            out.update(id(a) for a in node.args if isinstance(a, ast.Name))
    return out


def _part_of(expr: ast.expr, derived: dict[str, Path]) -> Path | None:
    """The part of the batch an expression is made from: the first one it reads (`batch[0]`, `batch["image"]`,
    `x.to(device)`), not a size it reads of one (`imgs.shape[0]`)."""
    sizes = _size_reads(expr)
    for node in ast.walk(expr):  # breadth first: `batch["B"]` is met before the `batch` inside it
        if id(node) in sizes:
            continue
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in derived
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int | str)
        ):
            return (*derived[node.value.id], node.slice.value)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in derived:
            return derived[node.id]
    return None


def find_roles(target: ast.expr, uses: list[ast.stmt], lookup: Lookup) -> Roles:
    """The parts of a batch bound to `target` and what `uses` (the loop body, the statements after a
    `next(iter(loader))`) does with them: the first module called with a part is the model."""
    roles = Roles(_leaves(target))
    derived = {name: path for path, name in roles.leaves.items()}
    for stmt in _in_order(uses):
        for call in sorted((n for n in ast.walk(stmt) if isinstance(n, ast.Call)), key=_position):
            found = [(i, _part_of(a, derived)) for i, a in enumerate(call.args) if not isinstance(a, ast.Starred)]
            parts = [(i, p) for i, p in found if p is not None]  # `model(x)`, `model(batch["image"].to(device))`
            if not parts:
                continue
            callee = resolve(call.func, lookup)
            if callee is _MISSING and isinstance(call.func, ast.Call):  # `nn.CrossEntropyLoss()(out, y)`
                callee = resolve(call.func.func, lookup)
                callee = callee if isinstance(callee, type) and issubclass(callee, _CLASS_LOSSES) else _MISSING
            if _class_loss(callee):
                target_arg = call.args[1] if len(call.args) > 1 else None
                target_arg = next((k.value for k in call.keywords if k.arg == "target"), target_arg)
                path = _part_of(target_arg, derived) if target_arg is not None else None
                if path is not None and path not in roles.inputs:
                    roles.targets.add(path)
                    roles.loss_text = ast.unparse(call.func)
            elif roles.model is None and isinstance(callee, nn.Module) and not isinstance(callee, _Loss):
                roles.model, roles.model_text = callee, ast.unparse(call.func)
                for index, path in parts:
                    roles.inputs.setdefault(path, index)
                roles.targets -= set(roles.inputs)
            elif isinstance(callee, nn.Module) and not isinstance(callee, _Loss) and callee is not roles.model:
                for index, path in parts:
                    if path not in roles.inputs and path not in roles.targets:
                        roles.others.setdefault(path, (callee, ast.unparse(call.func), index, len(call.args)))
        _derive(stmt, derived, roles.unpacked)
    # a named part is known when it, or a part inside it, has a role (`data` holds `inputs` and `labels`)
    known = set(roles.inputs) | roles.targets
    for path in list(roles.names):
        inside = [p for p in known if p[: len(path)] == path and len(p) > len(path)]
        if inside and path not in known:
            roles.inputs.setdefault(path, -1)  # a container of known parts (`batch`): not unknown itself
    return roles


def _position(node: ast.AST) -> tuple[int, int]:
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def _class_loss(callee: Any) -> bool:
    if isinstance(callee, _CLASS_LOSSES) or (isinstance(callee, type) and issubclass(callee, _CLASS_LOSSES)):
        return True
    name = getattr(callee, "__name__", "")
    return callable(callee) and name in _CLASS_LOSS_FUNCTIONS and "torch" in (getattr(callee, "__module__", "") or "")


def tainted_statements(roles: Roles, uses: list[ast.stmt]) -> tuple[set[tuple[Any, ...]], set[str]]:
    """The statements of `uses` that read an unknown part of the batch (or what was made from one), and the
    names they would have bound or changed (`losses.append(loss)` changes `losses`)."""
    unknown = roles.unknown()
    at: dict[int, set[bool]] = {}  # line -> whether each part unpacked there is unknown
    for (line, _), path in roles.unpacked.items():
        at.setdefault(line, set()).add(path in unknown)
    only_unknown = {line for line, flags in at.items() if flags == {True}}  # `real_B = Variable(batch["B"]...)`
    return left_out_with(
        uses, set(unknown.values()), lambda stmt: isinstance(stmt, ast.Assign) and stmt.lineno in only_unknown
    )


def left_out_with(
    uses: list[ast.stmt], tainted: set[str], seeds: Callable[[ast.stmt], bool] = lambda stmt: False
) -> tuple[set[tuple[Any, ...]], set[str]]:
    """The statements of `uses` that are `seeds` or read a `tainted` name (or one such a statement bound or
    changed, in turn), and the names they would have bound or changed."""
    tainted = set(tainted)
    keys: set[tuple[Any, ...]] = set()
    changed: set[str] = set()
    skipped_inside: set[int] = set()
    for stmt in _in_order(uses):
        if id(stmt) in skipped_inside:
            continue
        header = _header_reads(stmt)
        if not (header & tainted) and not seeds(stmt):
            continue
        keys.add(node_key(stmt))
        inner = [n for n in ast.walk(stmt) if isinstance(n, ast.stmt)]
        skipped_inside |= {id(n) for n in inner}
        names = set().union(*(bound_names(n) for n in inner)) | _receivers(stmt)
        tainted |= names
        changed |= names
    return keys, changed


def _asks_dataset(stmt: ast.stmt, loaders: set[str]) -> bool:
    """`batches_done = epoch * len(dataloader) + i`, `n = len(loader.dataset)`: a statement (a compound one: its
    header) that asks a stand-in loader what only its dataset knows."""
    parts = [stmt] if not hasattr(stmt, "body") else [getattr(stmt, a) for a in ("test", "iter") if hasattr(stmt, a)]
    for part in parts:
        for node in ast.walk(part):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "len"
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in loaders
            ):
                return True
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in loaders:
                return node.attr != "batch_size"
    return False


def _header_reads(stmt: ast.stmt) -> set[str]:
    """The names a statement reads itself (a compound statement: its header only)."""
    if isinstance(stmt, ast.For | ast.AsyncFor):
        return loaded_names(stmt.iter)
    if isinstance(stmt, ast.While | ast.If):
        return loaded_names(stmt.test)
    if isinstance(stmt, ast.With | ast.AsyncWith):
        return set().union(*(loaded_names(i.context_expr) for i in stmt.items))
    if isinstance(stmt, ast.Try | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return set()
    return loaded_names(stmt)


def _receivers(stmt: ast.stmt) -> set[str]:
    """`losses.append(x)`, `total.add_(x)`: the object a method is called on may change."""
    out = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root: ast.expr = node.func.value
            while isinstance(root, ast.Attribute | ast.Subscript):
                root = root.value
            if isinstance(root, ast.Name):
                out.add(root.id)
    return out


# -- the stand-in -------------------------------------------------------------------------------------------


@dataclass
class Made:
    """The batch made for one site, and what the hover and the script's notes say of it."""

    batch: Any
    hovers: dict[tuple[str, int, str], str]  # (file, line, name) -> the hint's note
    note: str


class StandInLoader:
    """Bound where `DataLoader(dataset, ...)` could not run for want of its dataset. Iterating it gives one
    batch, made when first asked for, from the code at the place that asks (`_make`)."""

    def __init__(self, size: int, why: str, device: torch.device, recorder: Recorder, sources: dict[str, str]) -> None:
        state = {"size": size, "why": why, "device": device, "recorder": recorder, "sources": sources}
        state["made"] = {}  # (file, line) -> the batch made for the place that asked there
        state["inputs"] = {}  # id(model) -> its inferred input and output (a loop and a `next(iter(...))`)
        state["others"] = {}  # (id(module), index, id(model)) -> a part another module is called with
        state["known"] = {}  # part of the batch -> (its tensor, what its hover says), from every use so far
        state["model"] = ""
        object.__setattr__(self, "_state", state)
        object.__setattr__(self, "batch_size", size)

    def __iter__(self) -> Iterator[Any]:
        return _Batches(self)

    def __len__(self) -> int:
        raise Unreadable(f"the loader's length needs its dataset, which could not be read: {self._state['why']}")

    def __getattr__(self, name: str) -> Any:  # `.dataset`, `.sampler`: only the dataset knows
        raise Unreadable(f"`{name}` needs the loader's dataset, which could not be read: {self._state['why']}")

    @property
    def made(self) -> dict[tuple[str, int], Made]:
        made: dict[tuple[str, int], Made] = self._state["made"]
        return made

    def batch(self, frame: FrameType | None) -> Any:
        where = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("", 0)
        if where not in self.made:
            self.made[where] = self._make(frame)
        return self.made[where].batch

    def inputs_of(self, module: nn.Module) -> list[torch.Tensor] | None:
        """The inferred input of a module the batch is given to, made once per module."""
        state = self._state
        if id(module) not in state["inputs"]:
            state["inputs"][id(module)] = _model_input(module, state["size"], state["device"], state["recorder"])
        inputs: list[torch.Tensor] | None = state["inputs"][id(module)][0]
        return inputs

    def part_for(self, module: nn.Module, index: int, model: nn.Module, count: int = 1) -> torch.Tensor | None:
        """A part of the batch that `module` is called with first, at `index` (cyclegan's `G_AB(real_B)`,
        esrgan's `discriminator(imgs_hr)`), made once: the model's output in its place where `module` runs on
        that (an image-to-image model's output is the other part's kind of data: `imgs_hr` is as large as
        `generator(imgs_lr)`), else `module`'s own inferred input."""
        state = self._state
        key = (id(module), index, id(model))
        if key not in state["others"]:
            state["others"][key] = None
            own = self.inputs_of(module)
            main, output = state["inputs"].get(id(model)) or (None, None)
            tries: list[list[torch.Tensor]] = []
            if isinstance(output, torch.Tensor) and main:
                for fill in ([*own] if own else None, [main[0]] * max(index + 1, len(own or []), count)):
                    if fill is not None and index < len(fill):
                        tries.append([output if i == index else t for i, t in enumerate(fill)])
            tries += [own] if own is not None and index < len(own) else []
            recorder: Recorder = state["recorder"]
            was, recorder.active = recorder.active, False
            try:
                for args in tries:
                    try:
                        with torch.no_grad():
                            module(*args)
                    except Exception:
                        continue
                    state["others"][key] = args[index]
                    break
            finally:
                recorder.active = was
        part: torch.Tensor | None = state["others"][key]
        return part

    def _make(self, frame: FrameType | None) -> Made:
        state = self._state
        why = state["why"]
        site = _site(frame, state["sources"], self)
        if site is None:
            return Made(None, {}, "a loader whose dataset could not be read was used where its batch has no shape")
        path, line, target, uses, lookup = site
        roles = find_roles(target, uses, lookup)
        unknown_why = f"the dataset could not be read: {why}"
        parts: dict[Path, Any] = {}
        texts: dict[Path, str] = {}
        failed = f"line {line}: no model is called with the batch, so it has no shape ({why})"
        if roles.model is not None:
            recorder: Recorder = state["recorder"]
            if id(roles.model) not in state["inputs"]:
                state["inputs"][id(roles.model)] = _model_input(roles.model, state["size"], state["device"], recorder)
            inputs, output = state["inputs"][id(roles.model)]
            failed = f"line {line}: the model's inferred input did not run on {roles.model_text} ({why})"
            for part, index in roles.inputs.items() if inputs is not None else ():
                if index >= 0:
                    parts[part], texts[part] = inputs[min(index, len(inputs) - 1)], f"{ORIGIN} ({unknown_why})"
                    state["model"] = roles.model_text
            for part in roles.targets if inputs is not None else ():
                spatial = output.shape[2:] if isinstance(output, torch.Tensor) and output.dim() > 1 else []
                tensor = torch.zeros([state["size"], *spatial], dtype=torch.long, device=state["device"])
                parts[part], texts[part] = tensor, f"class indices for {roles.loss_text} ({unknown_why})"
        model = roles.model
        for part, (module, text, index, count) in roles.others.items() if model is not None else ():
            other = self.part_for(module, index, model, count) if model is not None else None
            if part not in parts and other is not None:
                parts[part], texts[part] = other, f"{ORIGIN} of {text} ({unknown_why})"
        # what an earlier use of the same loader found (its loop's loss said the labels' shape) holds here too
        for part, (tensor, text) in state["known"].items():
            if part not in parts:
                parts[part], texts[part] = tensor, text
        if not parts:
            return Made(None, {}, failed)
        state["known"].update({part: (parts[part], texts[part]) for part in parts})
        batch = _assemble((), parts, set(roles.names), unknown_why)
        hovers: dict[tuple[str, int, str], str] = {}
        named = [(line, name, part) for part, name in roles.leaves.items()]
        named += [(at, name, part) for (at, name), part in roles.unpacked.items()]
        for at, name, part in named:
            if part in texts:
                hovers[(path, at, name)] = texts[part]
        listed = [(p, n) for p, n in roles.names.items() if p in parts or not any(k[: len(p)] == p for k in parts)]
        listed += [(p, _spelled(p, roles.names)) for p in parts if p not in roles.names]  # `batch["A"]`
        shapes = ", ".join(f"{n} {list(parts[p].shape)}" if p in parts else f"{n} unknown" for p, n in listed)
        note = f"line {line}: {ORIGIN} of {state['model']}: {shapes} ({unknown_why})"
        return Made(batch, hovers, note)


def _spelled(path: Path, names: dict[Path, str]) -> str:
    """`batch["A"]`, `data[0]`: a part no name was given, by the nearest named part holding it."""
    for cut in range(len(path) - 1, -1, -1):
        if path[:cut] in names:
            return names[path[:cut]] + "".join(f"[{key!r}]" for key in path[cut:])
    return "batch" + "".join(f"[{key!r}]" for key in path)


class _Batches:
    def __init__(self, loader: StandInLoader) -> None:
        self.loader = loader
        self.done = False

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> Any:
        if self.done:
            raise StopIteration
        self.done = True
        recorder: Recorder = self.loader._state["recorder"]
        batch = self.loader.batch(recorder.user_frame(sys._getframe(1)))
        if batch is None:
            raise StopIteration
        return batch


def _assemble(path: Path, parts: dict[Path, Any], leaves: set[Path], why: str) -> Any:
    if path in parts:
        return parts[path]
    inside = {p[len(path)] for p in [*parts, *leaves] if p[: len(path)] == path and len(p) > len(path)}
    if not inside:
        return UnknownPart(why)
    if any(isinstance(key, str) for key in inside):  # `batch["image"]`: the dataset gives dicts
        return {key: _assemble((*path, key), parts, leaves, why) for key in inside}
    positions = [key for key in inside if isinstance(key, int)]
    return [_assemble((*path, index), parts, leaves, why) for index in range(max(positions) + 1)]


def _model_input(
    model: nn.Module, size: int, device: torch.device, recorder: Recorder
) -> tuple[list[torch.Tensor] | None, Any]:
    """The first inferred input set the model runs on without an error (free sizes solved when the plain
    guess fails), its batch dims `size`; and the model's output on it."""
    try:
        candidates = _candidates(model)
    except NoInput:
        return None, None
    was = recorder.active
    recorder.active = False  # the trial forwards are ours: no hints, no layer uses, no mismatches
    try:
        for guesses in candidates:
            tried = _try(model, guesses, size, device)
            if tried[0] is not None:
                return tried
        for guesses in candidates:
            try:
                solved = solve.solve(solve.symbolic_pass(lambda: model, guesses, 10.0), guesses)
            except Exception:
                continue
            if solved is not None:
                tried = _try(model, solved.guesses, size, device)
                if tried[0] is not None:
                    return tried
        for scale in (2, 4, 8):  # a deep encoder (a U-Net's eight downsamplings) wants 256 where 32 was guessed
            for guesses in candidates:
                if not any(d.kind == "free" for g in guesses for d in g.dims):
                    continue
                larger = [dataclasses.replace(g, dims=[_scaled(d, scale) for d in g.dims]) for g in guesses]
                tried = _try(model, larger, size, device)
                if tried[0] is not None:
                    return tried
    finally:
        recorder.active = was
    return None, None


def _scaled(dim: Dim, scale: int) -> Dim:
    return dataclasses.replace(dim, size=dim.size * scale) if dim.kind == "free" else dim


def _candidates(model: nn.Module) -> list[list[Guess]]:
    return library_candidates(model) or infer(model)


def _try(
    model: nn.Module, guesses: list[Guess], size: int, device: torch.device
) -> tuple[list[torch.Tensor] | None, Any]:

    inputs = [make_tensor([size if d.kind == "batch" else d.size for d in g.dims], g.dtype, device) for g in guesses]
    try:
        with torch.no_grad():
            output = model(*inputs)
    except Exception:
        return None, None
    return inputs, output


def _site(
    frame: FrameType | None, sources: dict[str, str], loader: StandInLoader
) -> tuple[str, int, ast.expr, list[ast.stmt], Lookup] | None:
    """Where the batch is asked for: the file, the line, what the batch is bound to, the statements that use it,
    and the names there."""
    if frame is None:
        return None
    path = frame.f_code.co_filename
    text = sources.get(path)
    if text is None:
        try:
            with open(path, encoding="utf-8") as handle:
                text = sources[path] = handle.read()
        except OSError:
            return None
    parsed = parse(path, text)
    if not isinstance(parsed, Source):
        return None
    local, global_ = frame.f_locals, frame.f_globals

    def lookup(name: str) -> Any:
        value = local.get(name, _MISSING)
        if value is _MISSING:
            value = global_.get(name, _MISSING)
        return getattr(builtins, name, _MISSING) if value is _MISSING else value

    line = frame.f_lineno
    found = site_at(parsed.tree, line, loader, lookup)
    if found is None:
        return None
    target, uses = found
    return path, line, target, uses, lookup


def site_at(tree: ast.Module, line: int, loader: object, lookup: Lookup) -> tuple[ast.expr, list[ast.stmt]] | None:
    """At `line`, a `for` over the loader (its target, its body) or an assignment from it (its target, the
    statements after it in its block)."""
    best: tuple[ast.expr, list[ast.stmt]] | None = None
    for block in _blocks(tree):
        for index, stmt in enumerate(block):
            if isinstance(stmt, ast.For) and stmt.lineno <= line <= (stmt.iter.end_lineno or stmt.lineno):
                target = _loop_target(stmt.iter, stmt.target, loader, lookup)
                if target is not None:
                    best = (target, stmt.body)
            elif (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno)
            ):
                best = (stmt.targets[0], block[index + 1 :])
    return best


def _blocks(tree: ast.AST) -> Iterator[list[ast.stmt]]:
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(node, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield inner
        for handler in getattr(node, "handlers", []):
            yield handler.body


def _loop_target(iterable: ast.expr, target: ast.expr, loader: object, lookup: Lookup) -> ast.expr | None:
    """The part of a `for` target the loader's batch is bound to: `for x, y in loader`, `enumerate(loader)`,
    `zip(a, loader)`, `tqdm(loader)`."""
    if isinstance(iterable, ast.Name | ast.Attribute):
        return target if resolve(iterable, lookup) is loader else None
    if not isinstance(iterable, ast.Call):
        return None
    name = iterable.func.id if isinstance(iterable.func, ast.Name) else ""
    if name == "enumerate" and iterable.args:
        inner = target.elts[1] if isinstance(target, ast.Tuple) and len(target.elts) == 2 else None
        return _loop_target(iterable.args[0], inner, loader, lookup) if inner is not None else None
    if name == "zip":
        for index, arg in enumerate(iterable.args):
            if isinstance(target, ast.Tuple) and len(target.elts) == len(iterable.args):
                found = _loop_target(arg, target.elts[index], loader, lookup)
                if found is not None:
                    return found
        return None
    for arg in iterable.args[:1]:  # tqdm(loader), iter(loader)
        found = _loop_target(arg, target, loader, lookup)
        if found is not None:
            return found
    return None


# -- the script's side: where stand-ins are bound, and what their unknown parts leave out -------------------


@dataclass
class Silenced:
    """Statements of one top-level statement left out because they read an unknown part of a made-up batch."""

    keys: set[tuple[Any, ...]] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)  # names they would have bound or changed
    left_out: list[tuple[int, str, str]] = field(default_factory=list)  # (line, the unknown part's name, why)
    # the loops over a stand-in: (the `for` line, its loader's name, the names its body binds)
    loops: list[tuple[int, str, set[str]]] = field(default_factory=list)


class StandIns:
    """The stand-in loaders of one script run (`trace/script_run.py`)."""

    def __init__(self, ns: dict[str, Any], device: torch.device, recorder: Recorder, sources: dict[str, str]) -> None:
        self.ns = ns
        self.device = device
        self.recorder = recorder
        self.sources = sources
        self.file = next(iter(sources))  # the script's own file
        self.loaders: dict[str, StandInLoader] = {}

    @contextlib.contextmanager
    def scope(self, ns: dict[str, Any]) -> Iterator[None]:
        """Statements of a function the script steps into (`main()`) bind and read its own names."""
        outer, self.ns = self.ns, ns
        try:
            yield
        finally:
            self.ns = outer

    def _lookup(self, name: str) -> Any:
        value = self.ns.get(name, _MISSING)
        return getattr(builtins, name, _MISSING) if value is _MISSING else value

    def bind(self, stmt: ast.stmt, why: str, unknown: set[str]) -> StandInLoader | None:
        """`loader = DataLoader(dataset, ...)` that cannot run for want of its dataset: bind a stand-in. For
        `return DataLoader(dataset, ...)` in a function the script steps into, the stand-in is made (the script returns
        it to the caller, and `named` gives it the name the caller binds it to)."""
        named = isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
        if not (named or isinstance(stmt, ast.Return)):
            return None
        assert isinstance(stmt, ast.Assign | ast.Return)
        if stmt.value is None or not is_data_loader_call(stmt.value):
            return None
        assert isinstance(stmt.value, ast.Call)
        size = batch_size(stmt.value, self._lookup, unknown)
        loader = StandInLoader(size, why, self.device, self.recorder, self.sources)
        if isinstance(stmt, ast.Assign):
            assert isinstance(stmt.targets[0], ast.Name)
            self.ns[stmt.targets[0].id] = loader
            self.named(stmt.targets[0].id, loader)
        else:
            self.named(f"the loader line {stmt.lineno} returns", loader)
        return loader

    def named(self, name: str, loader: object) -> None:
        """Know a stand-in by the name the script binds it to (a returned one: by its caller's name)."""
        if isinstance(loader, StandInLoader):
            for old in [n for n, v in self.loaders.items() if v is loader]:
                del self.loaders[old]
            self.loaders[name] = loader

    def empty(self, stmt: ast.stmt, line: int) -> bool:
        """After `loader = DataLoader(dataset, ...)` ran: a dataset with no samples here (its data folder is not
        there, so a glob found nothing) gets a stand-in as well; its loop would not run at all."""
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            return False
        loader = self.ns.get(stmt.targets[0].id)
        if not isinstance(loader, torch.utils.data.DataLoader):
            return False
        try:
            if len(loader.dataset) != 0:  # type: ignore[arg-type]
                return False
        except Exception:  # an iterable dataset has no length: its loop tells
            return False
        return self.bind(stmt, f"line {line}: its dataset has no samples here", set()) is not None

    def _loops(self, stmt: ast.stmt) -> Iterator[tuple[ast.For, ast.expr, StandInLoader]]:
        if not self.loaders:
            return
        for node in ast.walk(stmt):
            if isinstance(node, ast.For):
                for loader in self.loaders.values():
                    target = _loop_target(node.iter, node.target, loader, self._lookup)
                    if target is not None:
                        yield node, target, loader

    def silence(self, stmt: ast.stmt) -> Silenced:
        out = Silenced()
        for loop, target, loader in self._loops(stmt):
            body = {n for inner in ast.walk(loop) if isinstance(inner, ast.stmt) for n in bound_names(inner)}
            out.loops.append((loop.lineno, next(n for n, v in self.loaders.items() if v is loader), body))
            roles = find_roles(target, loop.body, self._lookup)
            roles.carried = set(loader._state["known"])
            model = roles.model
            if model is not None:  # the main model's input first: the other parts may be made from its output
                loader.inputs_of(model)
            roles.others = {  # a part none can be made for stays unknown: what reads it is left out up front
                p: o
                for p, o in roles.others.items()
                if model is not None and loader.part_for(o[0], o[2], model, o[3]) is not None
            }
            if roles.model is None and not roles.carried:
                continue  # no batch is made: the loop does not run at all (`left_unknown`)
            keys, changed = tainted_statements(roles, loop.body)
            # what only the dataset knows (`len(loader)`, `loader.dataset`): left out with what reads it
            asks, asked = left_out_with(loop.body, set(), lambda inner: _asks_dataset(inner, set(self.loaders)))
            out.keys |= keys | asks
            out.changed |= changed | asked
            unknown = ", ".join(f"`{n}`" for n in roles.unknown().values())
            why = (
                f"nothing in the code says the shape of the batch's {unknown}, and the loader's dataset could not "
                f"be read: {loader._state['why']}"
            )
            leaf = next(iter(roles.unknown().values()), "")
            for key in sorted(keys - asks):
                out.left_out.append((key[0], leaf, why))
            name = next(n for n, v in self.loaders.items() if v is loader)
            for key in sorted(asks):
                out.left_out.append((key[0], name, f"only its dataset knows its length: {loader._state['why']}"))
        return out

    def left_unknown(self, stmt: ast.stmt, silenced: Silenced, names: list[str]) -> tuple[dict[str, str], list[Any]]:
        """After a top-level statement ran: the names it left unknown (why), and the statements it left out
        (line, name, why) for SL011."""
        unknown: dict[str, str] = {}
        left_out = list(silenced.left_out)
        why = silenced.left_out[0][2] if silenced.left_out else ""
        for name in silenced.changed:
            unknown[name] = why
        for name in names:
            value = self.ns.get(name)
            if isinstance(value, UnknownPart):
                unknown[name] = value.why
        for line, name, bound in silenced.loops:
            made = self.loaders[name].made.get((self.file, line))
            if made is not None and made.batch is None:  # no batch could be made: the loop did not run
                unknown.update(dict.fromkeys(bound, made.note))
                left_out.append((line, name, made.note))
        return unknown, left_out

    def made_count(self) -> int:
        """How many batches have been made so far (one per place that asked)."""
        return sum(len(loader.made) for loader in self.loaders.values())

    def notes(self) -> list[str]:
        return [made.note for loader in self.loaders.values() for made in loader.made.values()]

    def hover_notes(self, records: list[Record]) -> list[Record]:
        """The hint of a part of a made-up batch says where it came from (the hover shows it)."""
        hovers: dict[tuple[str, int, str], str] = {}
        for loader in self.loaders.values():
            for made in loader.made.values():
                hovers.update(made.hovers)
        if not hovers:
            return records
        return [
            dataclasses.replace(r, producer=hovers[(r.path, r.line, r.target)])
            if (r.path, r.line, r.target) in hovers
            else r
            for r in records
        ]
