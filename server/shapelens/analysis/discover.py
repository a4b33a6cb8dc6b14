"""Finding the models of a file: `nn.Module` subclasses (directly, through a class of the same file, or
through a base class defined elsewhere, resolved with jedi), `nn.Sequential(...)` built at module level, and
module-level variables bound to a ready-made library model (`GPT2LMHeadModel(config)`, `resnet18()`,
`timm.create_model("resnet18")`, `AutoModel.from_config(cfg)`): the variable is the model, as for a
Sequential.

Discovery is static and may over-approximate where jedi cannot decide (a base from a third-party package);
the trace child checks `issubclass(cls, nn.Module)` before tracing, so a wrong guess costs nothing.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from shapelens.analysis.names import names_for, qualified_name
from shapelens.core.source import Source, parse, read_source_or_empty

# any torch.nn class as a base (Module, Sequential, ModuleList, ...), and the base classes of the model
# libraries, which jedi does not always follow (transformers' lazy `__init__` stops it)
MODULE_BASES = (
    "torch.nn.",
    "transformers.modeling_utils.PreTrainedModel",
    "transformers.PreTrainedModel",
    "transformers.modeling_layers.GradientCheckpointingLayer",
)
# bases known not to be modules, so that jedi (seconds on transformers) is not asked: `ModelOutput` (a dict),
# `GenerationMixin`, configs, the `GenericFor*` mixins beside a model's PreTrainedModel
NOT_MODULE_BASES = (
    "transformers.utils.",
    "transformers.generation.",
    "transformers.configuration_utils.",
    "transformers.modeling_layers.GenericFor",
)


@dataclass
class Model:
    name: str  # class name, or the variable a module-level Sequential is bound to
    kind: str  # "class" | "sequential" (a module-level variable that is the model: a Sequential, a library model)
    node: ast.ClassDef | ast.Assign
    forward: ast.FunctionDef | None = None
    init: ast.FunctionDef | None = None


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            return stmt
    return None


def find_models(source: Source, root: str) -> list[Model]:
    classes = {n.name: n for n in source.tree.body if isinstance(n, ast.ClassDef)}
    verdicts: dict[str, bool] = {}

    def is_module(cls: ast.ClassDef, depth: int = 0) -> bool:
        if cls.name in verdicts:
            return verdicts[cls.name]
        verdicts[cls.name] = False  # cycles
        result = any(_base_is_module(source, base, classes, is_module, root, depth) for base in cls.bases)
        verdicts[cls.name] = result
        return result

    models: list[Model] = []
    for node in source.tree.body:
        if isinstance(node, ast.ClassDef) and is_module(node):
            forward = _method(node, "forward")
            if forward is None and "pretrained" in node.name.lower() and node.name.endswith("Model"):
                continue  # a library's abstract base (GPT2PreTrainedModel): weights and config, nothing to run
            models.append(Model(node.name, "class", node, forward, _method(node, "__init__")))
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and qualified_name(source.tree, node.value.func) == "torch.nn.Sequential"
        ):
            models.append(Model(node.targets[0].id, "sequential", node))
    known = {m.name for m in models}
    for assign in _module_level_assignments(source.tree):
        name = assign.targets[0].id  # type: ignore[attr-defined]
        if name not in known and library_model_call(source, assign.value, root):
            known.add(name)
            models.append(Model(name, "sequential", assign))
    return models


# -- ready-made models bound to a module-level variable ------------------------------------------------------

# Functions that return a model: `timm.create_model("resnet18")`, `torchvision.models.get_model("resnet18")`,
# `AutoModel.from_config(cfg)`. `from_pretrained` is left out: it downloads weights, and the trace never does.
FACTORIES = ("timm.create_model", "torchvision.models.get_model")
TORCHVISION_MODELS = "torchvision.models."  # `resnet18()`, `detection.fasterrcnn_resnet50_fpn()`: builders
TORCHVISION_NOT_BUILDERS = {"get_weight", "get_model_weights", "get_model_builder", "list_models", "get_model"}
# transformers classes that are models (`GPT2LMHeadModel`, `BertForMaskedLM`) rather than configs or
# tokenizers; `Auto*` classes cannot be constructed, only `from_config`
TRANSFORMERS_MODEL = re.compile(r"^transformers\.(?!Auto)\w*(Model|For[A-Z]\w*|LMHead\w*)$")
TRANSFORMERS_FROM_CONFIG = re.compile(r"^transformers\.(\w+\.)?Auto\w*\.from_config$")
CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")


def _module_level_assignments(tree: ast.Module) -> list[ast.Assign]:
    """`name = <call>` at the top level and under `if __name__ == "__main__":`."""
    found = []
    bodies = [tree.body]
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test):
            bodies.append(node.body)
    for body in bodies:
        for node in body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)
            ):
                found.append(node)
    return found


def _unchain(value: ast.expr) -> ast.expr:
    """`Net(...).to(device).eval()` → `Net(...)`."""
    while (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in ("to", "eval", "train", "cuda", "cpu", "float", "half", "double", "requires_grad_")
        and isinstance(value.func.value, ast.Call)
    ):
        value = value.func.value
    return value


def library_model_call(source: Source, value: ast.expr, root: str) -> bool:
    """Whether `value` builds a model of an installed library, decided from the names alone (cheap, no
    import): a transformers model class, a factory that returns a model, a torchvision builder, a torch.nn
    layer the file calls (`enc = nn.TransformerEncoder(...)` then `enc(src)`), else a class jedi places
    under an installed package whose bases reach torch.nn. A wrong guess costs nothing: the trace child
    skips a value that is no `nn.Module`."""
    call = _unchain(value)
    if not isinstance(call, ast.Call):
        return False
    qualified = _qualified(source, call.func)
    if qualified is None or _loads_weights(call):
        return False
    last = qualified.rpartition(".")[2]
    if qualified in FACTORIES or TRANSFORMERS_MODEL.match(qualified) or TRANSFORMERS_FROM_CONFIG.match(qualified):
        return True
    if qualified.startswith(TORCHVISION_MODELS):
        return last[:1].islower() and not last.startswith("_") and last not in TORCHVISION_NOT_BUILDERS
    if qualified.startswith("torch.nn.") and qualified.count(".") == 2:
        return bool(CAMEL.match(last)) and not last.endswith("Loss") and _called_in_file(source.tree, call)
    if qualified.startswith(("torch.", "transformers.", "timm.", "torchvision.")) or not CAMEL.match(last):
        return False
    return _jedi_installed_module_class(source, call.func, root)


def _loads_weights(call: ast.Call) -> bool:
    """`resnet18(weights=ResNet18_Weights.DEFAULT)`, `create_model("resnet18", pretrained=True)`: building it
    downloads weights, which a trace never does (the sandbox would refuse it): not a model to trace."""
    for keyword in call.keywords:
        if keyword.arg in ("weights", "pretrained", "weights_backbone", "pretrained_backbone"):
            value = keyword.value
            if not (isinstance(value, ast.Constant) and value.value in (None, False)):
                return True
    return bool(call.args) and isinstance(call.args[0], ast.Constant) and call.args[0].value is True


def _called_in_file(tree: ast.Module, call: ast.Call) -> bool:
    """The variable `call` is bound to is called somewhere in the file (`enc(src)`, `enc.forward(src)`)."""
    target = next(
        (n.targets[0] for n in ast.walk(tree) if isinstance(n, ast.Assign) and _unchain(n.value) is call), None
    )
    if not isinstance(target, ast.Name):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "forward":
                func = func.value
            if isinstance(func, ast.Name) and func.id == target.id:
                return True
    return False


def _jedi_installed_module_class(source: Source, func: ast.expr, root: str) -> bool:
    """A class of an installed package (not the project's: class discovery covers those) whose bases jedi
    follows to torch.nn. Anything jedi cannot tell counts as no model: a module-level variable is often a
    tokenizer, a dataset or an optimizer, and tracing it for nothing would be noise."""
    import jedi

    try:
        script = jedi.Script(code=source.text, path=source.path, project=_project(root))
        names = script.goto(func.end_lineno, (func.end_col_offset or 1) - 1, follow_imports=True)  # type: ignore[attr-defined]
    except Exception:
        return False
    for name in names:
        if name.type == "class" and "site-packages" in str(name.module_path or ""):
            try:
                return _installed_class_is_module(name, unknown=False)
            except Exception:
                return False
    return False


def _qualified(source: Source, expr: ast.expr) -> str | None:
    """`qualified_name`, reading the file's package from its path: a file inside a package
    (`transformers/models/bert/modeling_bert.py`) imports relatively (`from ...modeling_layers import X`)."""
    if source.path and os.path.isfile(source.path):
        return names_for(source.tree, source.path).resolve(expr)
    return qualified_name(source.tree, expr)


def _base_is_module(source, base, classes, is_module, root, depth) -> bool:  # type: ignore[no-untyped-def]
    qualified = _qualified(source, base)
    if qualified and qualified.startswith(MODULE_BASES):
        return True
    if qualified and qualified.startswith(NOT_MODULE_BASES):
        return False
    if isinstance(base, ast.Name) and base.id in classes:
        return bool(is_module(classes[base.id], depth + 1))
    if depth > 4 or not isinstance(base, ast.Name | ast.Attribute):
        return False
    return _jedi_base_is_module(source.path, source.text, root, base.end_lineno, (base.end_col_offset or 1) - 1)


def _jedi_base_is_module(path: str, text: str, root: str, line: int | None, column: int) -> bool:
    """Follow a base class defined elsewhere with jedi: a project file is parsed and checked in turn; a
    class from an installed package counts when jedi places it under torch.nn, and otherwise is kept as a
    candidate only when jedi cannot see it at all (the trace then decides)."""
    import jedi

    try:
        script = jedi.Script(code=text, path=path, project=_project(root))
        names = script.goto(line, column, follow_imports=True)
    except Exception:
        return False
    for name in names:
        full = name.full_name or ""
        if full.startswith(MODULE_BASES):
            return True
        module_path = str(name.module_path or "")
        if name.type == "class" and module_path.endswith(".py") and _inside(module_path, root):
            return _class_in_file_is_module(module_path, name.name, root)
        if name.type == "class" and "site-packages" in module_path:
            return _installed_class_is_module(name)
    return False


def _installed_class_is_module(name, unknown: bool = True) -> bool:  # type: ignore[no-untyped-def]
    """`transformers.GPT2Model` and friends: walk the class's bases as jedi infers them. `unknown` is the
    answer when jedi fails on the way."""
    try:
        seen = 0
        stack = [name]
        while stack and seen < 40:
            current = stack.pop()
            seen += 1
            if (current.full_name or "").startswith(MODULE_BASES):
                return True
            for sig_base in current._name.infer():  # jedi's class value
                for base_set in sig_base.py__bases__():
                    for base in base_set.infer():
                        full = base.py__name__()
                        module = base.get_root_context().py__name__() or ""
                        if f"{module}.{full}".startswith(MODULE_BASES):
                            return True
                        stack.append(_Wrapped(base))
    except Exception:
        return unknown  # cannot tell: a base class lets the trace decide
    return False


class _Wrapped:
    """Adapts a jedi value to the (full_name, _name.infer()) shape `_installed_class_is_module` walks."""

    def __init__(self, value) -> None:  # type: ignore[no-untyped-def]
        self._value = value
        module = value.get_root_context().py__name__() or ""
        self.full_name = f"{module}.{value.py__name__()}"
        self._name = self

    def infer(self):  # type: ignore[no-untyped-def]
        return [self._value]


def _inside(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    return path.startswith(root + os.sep) and "site-packages" not in path


@lru_cache(maxsize=16)
def _project(root: str):  # type: ignore[no-untyped-def]
    import jedi

    return jedi.Project(root, added_sys_path=[root])


def _class_in_file_is_module(path: str, class_name: str, root: str) -> bool:
    parsed = parse(path, read_source_or_empty(path))
    if not isinstance(parsed, Source):
        return False
    return any(m.name == class_name and m.kind == "class" for m in find_models(parsed, root))
