"""Constructors built without the user's help: how to call a model's class when no directive `init(...)` and
no example call in its file says how.

The candidates, in the order the trace child tries them (the first is `TargetSpec.model`, the rest
`TargetSpec.alternatives`; the child moves on when building or tracing one fails):

1. a real call of the class elsewhere in the workspace (`GPT(GPTConfig(n_layer=4))` in train.py), taken only
   when its arguments are literals or names bound once to literals or constructors in that file: its code is
   rebuilt here in the model file's names, so nothing else of that file runs;
2. the class's own defaults, with each required parameter supplied by, in turn: a config object built from
   its class when every field has a default (found through the parameter's annotation, else its name —
   `config` → a class named *Config/*Args/*Params of the file or its imports), a string `__init__` compares
   the parameter with (`rnn_type in ["LSTM", "GRU"]`), or a small int chosen by the parameter's name
   (`hidden` → 64, `n_layers` → 2), else a small distinct one;
3. `{"build": "ClassName"}`: the child builds the class as it sees fit (a library class's `config_class` made
   small, else its defaults).

Every value made up is named in `synthesized` ("hidden=64 (no value known: a small one)") so the hover shows
it. A constructor that would download weights never runs: `pretrained=False` / `weights=None` where the
signature has them, and no candidate at all when `__init__` calls `from_pretrained` or `torch.hub.load`
unconditionally.
"""

from __future__ import annotations

import ast
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from shapelens.analysis.discover import Model
from shapelens.analysis.names import find_module_file, package_root
from shapelens.core.source import Source, parse, read_source_or_empty
from shapelens.core.wire import InputSource

Item = dict[str, Any]


@dataclass
class Candidate:
    code: str  # the constructor call, in the model file's names: "GPT(config=GPTConfig())"
    source: InputSource  # WORKSPACE for a real call, else INFER
    synthesized: list[str] = field(default_factory=list)  # what was made up or chosen, for the hover
    guessed: bool = False  # some value was made up (not the model's own defaults nor a real call)


@dataclass
class Constructors:
    candidates: list[Candidate]
    reason: str = ""  # when there is none: which argument nothing could supply, or why it must not run

    def alternatives(self, name: str) -> list[Item]:
        """The plan items after the first candidate, ending with the child's own way to build the class."""
        return [*({"code": c.code} for c in self.candidates[1:]), {"build": name}]


# -- values chosen by a parameter's name -----------------------------------------------------------------

_BY_NAME: tuple[tuple[str, object], ...] = (
    (r"^(in_channels|in_ch|in_chans|input_channels|in_c|n_channels|num_channels|nc|channels_in|image_channels)$", 3),
    (r"^(num_classes|n_classes|n_class|num_class|classes|num_labels|n_labels|nclass|output_classes)$", 10),
    (r"vocab|^n_?tokens?$|^num_embeddings$|^ntoken$", 100),
    (r"heads?$|^n_?head", 4),
    (r"layers$|^depth$|^n_?layers?$|^num_blocks$|^n_blocks$|^n_?cells$", 2),
    (r"^block_size$|^max_seq|^seq_?len|len$|^n_ctx$|^n_positions$|^max_position|^context", 16),
    (r"^kernel", 3),
    (r"^stride$", 1),
    (r"^padding$", 1),
    (r"drop|^p$|^p_|_p$|^dp_|_dp$", 0.1),
    (r"multiplier|ratio|factor|expansion|^scale$|^mult$", 2),
    (r"gpu|^world_size$|^num_workers$|^workers$", 1),
    (r"^rank$|_rank$|^layer_id$|^layer_idx$|^index$|^idx$", 0),
    (r"batch", 2),
    (r"channels|^ngf$|^ndf$|^nf$|^filters$|^width$", 16),
    (r"hidden|dim|^d_model$|embed|^n_?embd$|^nhid$|^ninp$|features|size|^units$|^emsize$", 64),
)
_NOT_A_NUMBER = re.compile(
    r"(^|_)(encoder|decoder|backbone|model|module|net|block|layer|act|activation|norm|fn|func|callback|"
    r"tokenizer|loss|criterion|optimizer|transform|device|dtype|path|file|dir|name|cls)$"
)
_BOOLEAN = re.compile(
    r"^(bias|affine|bidirectional|causal|residual|flash|tie_weights|inplace|batch_first|training|pre_norm|"
    r"norm_first|learnable|trainable|shared|birnn|bidir)$|^(use|is|has|with|enable|do|add|apply|return|fix)_"
)
_STRINGY = re.compile(r"(_type|^type|mode|kind|name|method|style)$")
_DISTINCT = (8, 12, 20, 24, 28, 36)
_CONFIG_NAME = re.compile(r"^(config|cfg|conf|configs|args|params|hparams|hp|opt|opts|model_args|settings)$|config$")
_CONFIG_CLASS = re.compile(r"(Config|Configuration|Args|Arguments|Params|Parameters|Hparams|Settings)$")
_WEIGHTS = ("weights", "pretrained_weights", "weights_path", "checkpoint", "ckpt", "pretrained_path")
_DOWNLOADS = ("from_pretrained", "load_state_dict_from_url", "load_url", "hub.load", "download")


def value_by_name(name: str) -> object | None:
    lowered = name.lower()
    for pattern, value in _BY_NAME:
        if re.search(pattern, lowered):
            return value
    return None


# -- the classes a file can see ---------------------------------------------------------------------------


def _absolute(node: ast.ImportFrom, path: str) -> str | None:
    if not node.level:
        return node.module
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(node.level - 1):
        folder = os.path.dirname(folder)
    rel = os.path.relpath(folder, package_root(path))
    base = [] if rel == "." else rel.split(os.sep)
    return ".".join([*base, *([node.module] if node.module else [])])


@dataclass
class _Class:
    name: str  # as the model file names it
    node: ast.ClassDef | None  # None: a library class we cannot read
    buildable: bool  # every field or parameter has a default

    def call(self) -> tuple[str, str]:
        """`ModelArgs(vocab_size=100)` and what it says: the defaults, with a placeholder size (`vocab_size:
        int = -1  # defined later by tokenizer`) given a small value by its name."""
        placeholders = _placeholders(self.node) if self.node is not None else {}
        listed = ", ".join(f"{k}={v!r}" for k, v in placeholders.items())
        why = f"its defaults, {listed} for a placeholder" if placeholders else "its defaults"
        return f"{self.name}({listed})", why


def _placeholders(cls: ast.ClassDef) -> dict[str, object]:
    """The int fields whose default is a negative placeholder, each with a value chosen by its name."""
    found: dict[str, object] = {}
    for stmt in cls.body:
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and ast.unparse(stmt.annotation) == "int"
            and isinstance(stmt.value, ast.UnaryOp)
            and isinstance(stmt.value.op, ast.USub)
        ):
            value = value_by_name(stmt.target.id)
            found[stmt.target.id] = value if isinstance(value, int) and value > 0 else 8
    return found


def _buildable(cls: ast.ClassDef) -> bool:
    """A dataclass or NamedTuple whose fields all have defaults, or a class whose `__init__` needs nothing."""
    init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
    if init is not None:
        return not required_params(init)
    fields = [
        s
        for s in cls.body
        if isinstance(s, ast.AnnAssign)
        and isinstance(s.target, ast.Name)
        and "ClassVar" not in ast.unparse(s.annotation)
    ]
    return all(f.value is not None for f in fields)


_PARSED: dict[str, tuple[tuple[int, int], Source | None]] = {}  # path → ((mtime, size), its parse)


def _parsed(file: str) -> Source | None:
    """An imported file's parse, once per version of it: every model of a file (and every analysis of it) reads
    the same imports, and parsing a large one costs tens of milliseconds."""
    try:
        stat = os.stat(file)
    except OSError:
        return None
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _PARSED.get(file)
    if cached is not None and cached[0] == version:
        return cached[1]
    parsed = parse(file, read_source_or_empty(file))
    found = parsed if isinstance(parsed, Source) else None
    if len(_PARSED) >= 256:
        _PARSED.clear()
    _PARSED[file] = (version, found)
    return found


_NOT_CLASSES = {"typing", "typing_extensions", "collections.abc", "types"}  # what they export is no config class


class Visible:
    """The classes defined in a file and those it imports from the project's other files (parsed, never run)."""

    def __init__(self, source: Source, root: str) -> None:
        self.source = source
        path = os.path.abspath(source.path)
        self.roots = tuple(dict.fromkeys((package_root(path), os.path.dirname(path), os.path.abspath(root))))
        self.classes: dict[str, _Class] = {}
        for node in source.tree.body:
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = _Class(node.name, node, _buildable(node))
        for node in source.tree.body:
            if isinstance(node, ast.ImportFrom):
                module = _absolute(node, path)
                for alias in node.names:
                    local = alias.asname or alias.name
                    if alias.name == "*" or local in self.classes or not alias.name[:1].isupper():
                        continue
                    if module in _NOT_CLASSES:
                        continue  # `List`, `Dict`, `Callable`: typing generics, never a config to build
                    found = self._read(module, alias.name) if module else None
                    if found is not False:  # False: the module binds it otherwise (a type alias, a function)
                        self.classes[local] = found if isinstance(found, _Class) else _Class(local, None, False)
        self.bound = {n.name for n in source.tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)} | set(
            self.classes
        )
        self.modules: set[str] = set()  # names its imports bind: `torch.nn.EmbeddingBag`, `nn.EmbeddingBag` read
        for node in source.tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                self.bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
                self.modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.Assign):
                self.bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}

    def _read(self, module: str, name: str) -> _Class | bool | None:
        """The class `module` defines under `name`; None where it cannot be read; False where the module binds
        the name otherwise: `BlockArgs = List[List[Dict[str, Any]]]` is a type alias, no class to call."""
        file = find_module_file(module, self.roots)
        parsed = _parsed(file) if file is not None else None
        if parsed is None:
            return None
        cls = next((n for n in parsed.tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
        if cls is not None:
            return _Class(name, cls, _buildable(cls))
        bound = {n for stmt in parsed.tree.body for n in _assigned(stmt)}
        bound |= {n.name for n in parsed.tree.body if isinstance(n, ast.FunctionDef)}
        return False if name in bound else None


# -- a constructor's parameters ----------------------------------------------------------------------------


def required_params(init: ast.FunctionDef) -> list[ast.arg]:
    """The parameters of `__init__` (after `self`) that have no default."""
    args = init.args
    positional = [*args.posonlyargs, *args.args][1:]
    without = positional[: len(positional) - len(args.defaults)] if args.defaults else positional
    return [*without, *(a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None)]


def _all_params(init: ast.FunctionDef) -> dict[str, ast.expr | None]:
    """Every named parameter (after `self`) and its default."""
    args = init.args
    positional = [*args.posonlyargs, *args.args][1:]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    found = {a.arg: d for a, d in zip(positional, defaults, strict=True)}
    found.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)})
    return found


def _compared_strings(init: ast.FunctionDef, name: str) -> list[str]:
    """The strings `__init__` compares a parameter with: `rnn_type in ["LSTM", "GRU"]`, `mode == "sum"`."""
    found: list[str] = []
    for node in ast.walk(init):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if not any(isinstance(s, ast.Name) and s.id == name for s in sides):
            continue
        for side in sides:
            elements = side.elts if isinstance(side, ast.List | ast.Tuple | ast.Set) else [side]
            for e in elements:
                if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value not in found:
                    found.append(e.value)
    return found


def _annotation_name(arg: ast.arg) -> str | None:
    node = arg.annotation
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "GPTConfig"
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(node, ast.BinOp):  # `Config | None`
        node = node.left
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Optional":
        node = node.slice
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _downloads(init: ast.FunctionDef, off: set[str]) -> str | None:
    """The call that would download weights when `__init__` runs with the parameters in `off` set to
    False/None; None when there is none (or each is behind such a parameter)."""
    guarded: set[int] = set()
    for node in ast.walk(init):
        if isinstance(node, ast.If) and any(isinstance(n, ast.Name) and n.id in off for n in ast.walk(node.test)):
            guarded |= {id(n) for s in node.body for n in ast.walk(s)}
    for node in ast.walk(init):
        if isinstance(node, ast.Call) and id(node) not in guarded:
            text = ast.unparse(node.func)
            if any(text.endswith(d) for d in _DOWNLOADS):
                return text
    return None


# -- the candidates ------------------------------------------------------------------------------------------


def constructors_for(source: Source, model: Model, root: str) -> Constructors:
    """How to build `model` (a class) with nobody's help; no candidates (and the reason) when nothing can."""
    name = model.name
    init = model.init or _inherited_init(source, model.node)
    if init is None:
        layer = _torch_base(model.node)
        if layer is None:
            return Constructors([Candidate(f"{name}()", InputSource.INFER)])
        values = {p: value_by_name(p) or 8 for p in TORCH_LAYER_PARAMS[layer]}
        listed = ", ".join(f"{p}={v!r}" for p, v in values.items())
        said = [f"{p}={v!r} (no value known: a small one)" for p, v in values.items()]
        return Constructors([Candidate(f"{name}({listed})", InputSource.INFER, said, True)])
    visible = Visible(source, root)
    params = _all_params(init)
    fixed: dict[str, str] = {}  # keyword → code, passed whatever else is chosen
    notes: list[str] = []
    for param, default in params.items():
        lowered = param.lower()
        if lowered in ("pretrained", "pretrain", "use_pretrained", "load_pretrained", "progress_download"):
            fixed[param] = "False"
            notes.append(f"{param}=False (a trace never downloads weights)")
        elif lowered in _WEIGHTS and not (isinstance(default, ast.Constant) and default.value is None):
            fixed[param] = "None"
            notes.append(f"{param}=None (a trace never downloads weights)")
    off = set(fixed)
    download = _downloads(init, off)
    if download is not None:
        return Constructors(
            [],
            f"{name}'s constructor calls `{download}`, which would download weights, and a trace never does: add "
            f"`# shapelens: init(...)` with arguments that skip it above the class",
        )
    required = [p for p in required_params(init) if p.arg not in fixed]
    candidates: list[Candidate] = []
    if required:  # only then is a real call worth finding: the defaults are the class's own otherwise
        candidates = workspace_calls(source, name, root, visible)[:2]
    options: dict[str, list[tuple[str, str, bool]]] = {}  # param → [(code, note, guessed)]
    missing: list[str] = []
    distinct = iter(_DISTINCT)
    for arg in required:
        found = _options(arg, init, visible, distinct, name)
        annotation = _annotation_name(arg)
        typed = arg.annotation is not None and annotation not in ("int", "float", "bool", "str")
        if not found or (typed and annotation not in visible.classes):
            # nothing else, or a type alias or generic (`stages: StageSpecs`, `cfgs: List[List[int]]`): what the
            # file itself passes under that name beats a guess
            found = [*keyword_values(visible, arg.arg, name), *found]
        if not found:
            missing.append(arg.arg)
        options[arg.arg] = found
    if missing:
        if candidates:
            return Constructors(candidates)
        what = ", ".join(f"`{m}`" for m in missing)
        return Constructors(
            [],
            f"{name}'s constructor needs {what} and nothing could supply it (no default, no class with defaults "
            f"in its annotation or name, no call of {name} in the workspace with literal arguments): add "
            f"`# shapelens: init(...)` above the class, or an example call in the file",
        )
    posonly = {a.arg for a in init.args.posonlyargs}

    def call(choice: dict[str, tuple[str, str, bool]]) -> Candidate:
        positional = [choice[p][0] for p in choice if p in posonly]
        keywords = [f"{p}={choice[p][0]}" for p in choice if p not in posonly]
        keywords += [f"{p}={v}" for p, v in fixed.items()]
        synthesized = [*notes, *(choice[p][1] for p in choice if choice[p][1])]
        guessed = any(choice[p][2] for p in choice)
        return Candidate(f"{name}({', '.join([*positional, *keywords])})", InputSource.INFER, synthesized, guessed)

    first = {p: o[0] for p, o in options.items()}
    made = [call(first), *(call({**first, p: other}) for p, found in options.items() for other in found[1:3])]
    placeholders = {**_asserted_placeholders(init, params), **_called_placeholders(init, params, visible)}
    if placeholders:  # `depth=None` that __init__ asserts is given, `norm_layer=None` it calls: the candidate
        # that gives them goes first
        made.insert(0, call({**first, **placeholders}))
    for candidate in made:  # one more candidate per other choice of one parameter
        if all(c.code != candidate.code for c in candidates):
            candidates.append(candidate)
    return Constructors(candidates[:5])


# the required parameters of the torch layers a model class extends without an `__init__` of its own
TORCH_LAYER_PARAMS = {
    "Linear": ("in_features", "out_features"),
    "Bilinear": ("in1_features", "in2_features", "out_features"),
    **{f"Conv{d}": ("in_channels", "out_channels", "kernel_size") for d in ("1d", "2d", "3d")},
    **{f"ConvTranspose{d}": ("in_channels", "out_channels", "kernel_size") for d in ("1d", "2d", "3d")},
    "Embedding": ("num_embeddings", "embedding_dim"),
    "EmbeddingBag": ("num_embeddings", "embedding_dim"),
    **{k: ("input_size", "hidden_size") for k in ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")},
    **{f"BatchNorm{d}": ("num_features",) for d in ("1d", "2d", "3d")},
    **{f"InstanceNorm{d}": ("num_features",) for d in ("1d", "2d", "3d")},
    "LayerNorm": ("normalized_shape",),
    "GroupNorm": ("num_groups", "num_channels"),
    "MultiheadAttention": ("embed_dim", "num_heads"),
    "TransformerEncoderLayer": ("d_model", "nhead"),
    "TransformerDecoderLayer": ("d_model", "nhead"),
}


def _bases(node: ast.AST) -> list[ast.expr]:
    return list(node.bases) if isinstance(node, ast.ClassDef) else []


def _inherited_init(source: Source, node: ast.AST, depth: int = 0) -> ast.FunctionDef | None:
    """The `__init__` a class without its own takes from a base class of the same file."""
    classes = {n.name: n for n in source.tree.body if isinstance(n, ast.ClassDef)}
    for base in _bases(node):
        cls = classes.get(base.id) if isinstance(base, ast.Name) else None
        if cls is None or depth > 4:
            continue
        init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        found = init or _inherited_init(source, cls, depth + 1)
        if found is not None:
            return found
    return None


def _torch_base(node: ast.AST) -> str | None:
    """The torch layer a class without any `__init__` extends (`class Linear(Bottle, nn.Linear): pass`)."""
    for base in _bases(node):
        last = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""
        if last in TORCH_LAYER_PARAMS:
            return last
    return None


def _asserted_placeholders(
    init: ast.FunctionDef, params: dict[str, ast.expr | None]
) -> dict[str, tuple[str, str, bool]]:
    """Parameters defaulting to None that an `assert` of `__init__` names (`assert all([exists(depth),
    exists(heads)]), 'depth, heads must be supplied'`): placeholders its callers fill, each a value by name."""
    named = {
        n.id for a in ast.walk(init) if isinstance(a, ast.Assert) for n in ast.walk(a.test) if isinstance(n, ast.Name)
    }
    found: dict[str, tuple[str, str, bool]] = {}
    for param, default in params.items():
        if param in named and isinstance(default, ast.Constant) and default.value is None:
            value = value_by_name(param)
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[param] = (repr(value), f"{param}={value!r} (None by default, asserted given: a small one)", True)
    return found


def _called_placeholders(
    init: ast.FunctionDef, params: dict[str, ast.expr | None], visible: Visible
) -> dict[str, tuple[str, str, bool]]:
    """Layer-class parameters defaulting to None that `__init__` calls with no test of them (`norm_layer=None`,
    then `self.bn1 = norm_layer(width)`: a block whose parent always passes one, timm's Bottle2neck): a torch
    layer by the name, BatchNorm of its convolutions' rank (else LayerNorm), ReLU for an activation."""
    tested = {n.id for t in ast.walk(init) if isinstance(t, ast.If | ast.IfExp | ast.BoolOp | ast.Compare | ast.Assert)
              for n in ast.walk(t.test if isinstance(t, ast.If | ast.IfExp | ast.Assert) else t)
              if isinstance(n, ast.Name)}  # fmt: skip
    called = {n.func.id for n in ast.walk(init) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    torch_nn = "nn" if "nn" in visible.bound else "torch.nn" if "torch" in visible.modules else None
    text = ast.unparse(init)
    convs = [d for d in ("2d", "1d", "3d") if f"Conv{d}" in text or f"conv{d}" in text]
    found: dict[str, tuple[str, str, bool]] = {}
    for param, default in params.items():
        if not (isinstance(default, ast.Constant) and default.value is None) or param not in called - tested:
            continue
        lowered = param.lower()
        layer = ((f"BatchNorm{convs[0]}" if convs else "LayerNorm") if "norm" in lowered
                 else "ReLU" if "act" in lowered else None)  # fmt: skip
        if layer is not None and torch_nn is not None:
            code = f"{torch_nn}.{layer}"
            found[param] = (code, f"{param}={code} (None by default, called by __init__: a layer of its kind)", True)
    return found


def _uses(init: ast.FunctionDef, name: str) -> dict[str, Any]:
    """How `__init__` uses a parameter, where that tells its kind: called (`block(...)`: a class) with the
    attributes read on it (`block.expansion`), indexed (`layers[3]`: a list, up to that index) or iterated,
    passed to a dropout (`nn.Dropout(rate)`: a probability)."""
    found: dict[str, Any] = {"called": False, "attributes": set(), "index": -1, "sequence": False, "dropout": False}

    def named(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == name

    ranges: dict[str, int] = {}  # `for index in range(3)`: an index that runs to 2
    for node in ast.walk(init):
        if isinstance(node, ast.For | ast.comprehension) and isinstance(node.target, ast.Name):
            call = node.iter
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "range" and call.args:
                bound = call.args[-1] if len(call.args) < 3 else call.args[1]
                if isinstance(bound, ast.Constant) and isinstance(bound.value, int):
                    ranges[node.target.id] = bound.value

    for node in ast.walk(init):
        if isinstance(node, ast.Call):
            if named(node.func):
                found["called"] = True
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            values = [*node.args, *(k.value for k in node.keywords)]
            if "drop" in callee.lower() and any(named(v) for v in values):
                found["dropout"] = True
            if callee in ("len", "enumerate", "zip", "sum", "reversed", "sorted", "list", "tuple"):
                found["sequence"] |= any(named(v) for v in node.args)
        elif isinstance(node, ast.Attribute) and named(node.value):
            found["attributes"].add(node.attr)
        elif isinstance(node, ast.Subscript) and named(node.value):
            index = node.slice
            if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub):
                found["sequence"] = True
            elif isinstance(index, ast.Constant) and isinstance(index.value, int):
                found["index"] = max(found["index"], index.value)
            elif isinstance(index, ast.Name) and index.id in ranges:
                found["index"] = max(found["index"], ranges[index.id] - 1)
            elif not isinstance(index, ast.Constant):  # `cfg["width"]` is a mapping, no list
                found["sequence"] = True
        elif isinstance(node, ast.For | ast.comprehension) and named(node.iter):
            found["sequence"] = True
    return found


def _module_classes(visible: Visible, model: str, attributes: set[str], limit: int | None = 2) -> list[str]:
    """Classes of the file that could be a class-typed parameter (`ResNet(block, layers)`): nn.Module
    subclasses other than the model itself, those that define every attribute `__init__` reads on the
    parameter (`expansion`) first, at most two."""
    fits: list[tuple[int, str]] = []
    for node in visible.source.tree.body:
        if not isinstance(node, ast.ClassDef) or node.name == model:
            continue
        if not any(ast.unparse(b).split(".")[-1] in ("Module", "Sequential") for b in node.bases):
            continue
        defined = {n for s in node.body for n in _assigned(s)}
        if attributes - defined:
            continue
        init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        fits.append((len(required_params(init)) if init else 0, node.name))
    return [name for _, name in sorted(fits)][:limit]


def _assigned(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, ast.Assign):
        return {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id}
    return set()


def _by_use(arg: ast.arg, init: ast.FunctionDef, visible: Visible, model: str) -> list[tuple[str, str, bool]] | None:
    """Values from how `__init__` uses the parameter (`_uses`), or None where its use says nothing."""
    name = arg.arg
    use = _uses(init, name)
    annotation = arg.annotation
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # `"type[Plain | Wide]"`
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            annotation = None
    if annotation is not None:  # `block: Type[Union[BasicBlock, Bottleneck]]`: the classes it names
        modules = set(_module_classes(visible, model, set(), limit=None))
        named = [n.id for n in ast.walk(annotation) if isinstance(n, ast.Name) and n.id in modules]
        if named:
            return [(c, f"{name}={c} (a class its annotation names)", True) for c in dict.fromkeys(named)][:2]
    if use["called"]:
        classes = _module_classes(visible, model, use["attributes"])
        return [(c, f"{name}={c} (a class of this file that fits how __init__ uses it)", True) for c in classes]
    if use["index"] >= 0 or use["sequence"]:
        value = value_by_name(name)
        element = value if isinstance(value, int) and not isinstance(value, bool) else 2
        listed = [element] * (use["index"] + 1 if use["index"] >= 0 else 4)  # a stage per entry, as ResNet's
        return [(repr(listed), f"{name}={listed} (a list: __init__ indexes or iterates it)", True)]
    if use["dropout"]:
        return [("0.1", f"{name}=0.1 (a dropout probability: a small one)", True)]
    return None


def _options(
    arg: ast.arg, init: ast.FunctionDef, visible: Visible, distinct: Any, model: str = ""
) -> list[tuple[str, str, bool]]:
    """The values that could stand for one required parameter, best first: (code, note, guessed)."""
    name = arg.arg
    found: list[tuple[str, str, bool]] = []
    annotation = _annotation_name(arg)
    plain = annotation not in ("int", "float", "bool", "str") and not (annotation and annotation in visible.classes)
    if plain and not _CONFIG_NAME.search(name.lower()):
        used = _by_use(arg, init, visible, model)
        if used is not None:
            return used
    if annotation in ("int", "float", "bool", "str"):
        kind = annotation
    else:
        kind = None
        if annotation and annotation in visible.classes:
            cls = visible.classes[annotation]
            if cls.buildable or cls.node is None:
                code, why = cls.call()
                found.append((code, f"{name}={code} ({why})", False))
        if _CONFIG_NAME.search(name.lower()) or (annotation and _CONFIG_CLASS.search(annotation)):
            for cls in visible.classes.values():
                code, why = cls.call()
                if _CONFIG_CLASS.search(cls.name) and cls.buildable and all(code != f[0] for f in found):
                    found.append((code, f"{name}={code} ({why})", False))
        if not found and _CONFIG_NAME.search(name.lower()):
            namespace = _namespace(visible.source.tree, name, distinct)
            if namespace:
                shown = namespace.removeprefix("__import__('types').")
                shown = shown if len(shown) <= 70 else shown[:69] + "…)"
                found.append((namespace, f"{name}={shown} (no config class: its fields chosen by name)", True))
        if found or annotation or _CONFIG_NAME.search(name.lower()):
            return found  # a class-typed parameter is no number
    if kind in (None, "str"):
        strings = _compared_strings(init, name)
        if strings:
            return [(repr(s), f"{name}={s!r} (a value __init__ compares it with)", True) for s in strings[:2]]
        if kind == "str" or _STRINGY.search(name.lower()):
            return []
    if kind == "bool" or (kind is None and _BOOLEAN.search(name.lower())):
        return [("False", f"{name}=False (no value known)", True)]
    value = value_by_name(name)
    if kind is None and value is None and name.lower() == "device":
        return [("'cpu'", "device='cpu' (the trace places the model itself)", True)]
    if kind is None and value is None and _NOT_A_NUMBER.search(name.lower()):
        return []
    if value is None:
        value = next(distinct, 8)
    if kind == "float" and isinstance(value, int):
        value = float(value) if value != 1 else 0.1
    return [(repr(value), f"{name}={value!r} (no value known: a small one)", True)]


def _namespace(tree: ast.AST, param: str, distinct: Any) -> str | None:
    """A stand-in for a config object with no class in sight (`args`, an argparse Namespace): a
    `SimpleNamespace` of every attribute the file reads on an object of that name (`config.d_hidden`,
    `self.config.birnn`: the blocks the model hands its config to read it too), each a value chosen by its
    name."""
    stored = {param}  # `self.config = config`: the attribute it is kept under
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id == param:
            stored |= {t.attr for t in node.targets if isinstance(t, ast.Attribute)}
    reads: list[ast.Attribute] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)):
            continue
        base = node.value
        held = isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "self"
        if (isinstance(base, ast.Name) and base.id == param) or (held and getattr(base, "attr", "") in stored):
            reads.append(node)
    fields: dict[str, object] = {}
    for node in sorted(reads, key=lambda n: (n.lineno, n.col_offset)):  # in the order the file reads them
        if node.attr not in fields and not node.attr.startswith("__"):
            value = value_by_name(node.attr)
            if value is None:
                value = False if _BOOLEAN.search(node.attr.lower()) else next(distinct, 8)
            fields[node.attr] = value
    if not fields or len(fields) > 40:
        return None
    listed = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"__import__('types').SimpleNamespace({listed})"


# -- real calls in the workspace -----------------------------------------------------------------------------

_SKIP_DIRS = {"site-packages", "node_modules", "__pycache__", "build", "dist", "venv", "env"}
_MAX_FILES = 2000
_MAX_BYTES = 300_000
_LISTING: dict[str, tuple[float, list[str]]] = {}  # root → (when listed, its .py files)
_LISTING_TTL = 10.0
_SCAN_BUDGET_S = 0.15  # reading files the cache does not know yet, per analysis


def _python_files(root: str) -> list[str]:
    cached = _LISTING.get(root)
    if cached is not None and time.monotonic() - cached[0] < _LISTING_TTL:
        return cached[1]
    files: list[str] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        files += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
        if len(files) >= _MAX_FILES:
            break
    _LISTING[root] = (time.monotonic(), files)
    return files


_CALLED: dict[str, tuple[float, int, frozenset[str]]] = {}  # path → (mtime, size, the names it calls)
_CALL = re.compile(r"(\w+)\(")


def _called_names(file: str) -> frozenset[str]:
    """The names a file calls (`Net(` → "Net"), read once per version of the file: a warm look-up over a large
    workspace is a `stat` per file, not a read."""
    try:
        stat = os.stat(file)
    except OSError:
        return frozenset()
    cached = _CALLED.get(file)
    if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
        return cached[2]
    names = frozenset() if stat.st_size > _MAX_BYTES else frozenset(_CALL.findall(read_source_or_empty(file)))
    _CALLED[file] = (stat.st_mtime, stat.st_size, names)
    return names


def workspace_calls(source: Source, name: str, root: str, visible: Visible) -> list[Candidate]:
    """Calls of the class in the workspace (this file included) whose arguments can be rebuilt from literals
    and constructors the model file can see."""
    here = os.path.abspath(source.path)
    stem = os.path.splitext(os.path.basename(here))[0]
    needle = f"{name}("
    found: list[Candidate] = []
    folder = os.path.dirname(here)
    others = [f for f in _python_files(os.path.abspath(root)) if os.path.abspath(f) != here]
    # the nearest files first (train.py beside model.py), and a first scan of a large workspace cut short:
    # what it read is cached, so each later analysis reaches further
    others.sort(key=lambda f: -len(os.path.commonpath([folder, os.path.dirname(os.path.abspath(f))])))
    deadline = time.monotonic() + _SCAN_BUDGET_S
    for file in [here, *others]:
        if time.monotonic() > deadline:
            break
        if file == here:
            text = source.text
        elif name not in _called_names(file):
            continue
        else:
            text = read_source_or_empty(file)
        if needle not in text or (file != here and stem not in text):
            continue  # another file reaches the class only through an import that names the model file
        parsed = source if file == here else parse(file, text)
        if not isinstance(parsed, Source):
            continue
        aliases = {name} if file == here else _imported_as(parsed.tree, name, stem)
        if not aliases:
            continue
        for call, scopes in _calls(parsed.tree, aliases):
            code = _rebuild(call, scopes, visible, aliases, name, depth=0)
            if code is None:
                continue
            where = f"{os.path.relpath(file, os.path.dirname(here))}:{call.lineno}"
            note = f"{code} as {where} builds it"
            if all(c.code != code for c in found):
                found.append(Candidate(code, InputSource.WORKSPACE, [note]))
    return found


def keyword_values(visible: Visible, param: str, model: str) -> list[tuple[str, str, bool]]:
    """A required parameter nothing else supplies, from what the model's own file passes under its name
    (`block_args=decode_arch_def(arch_def)` in the `dict(...)` a builder function hands on to the class through
    a registry): the value rebuilt with its backward slice in that function, calls of the file's functions
    included. At most two, in file order."""
    found: list[tuple[str, str, bool]] = []
    for call, scopes in _all_calls(visible.source.tree.body):
        if ast.unparse(call.func) == model:
            continue  # a call of the class itself is a workspace call: taken whole or not at all
        for keyword in call.keywords:
            if keyword.arg != param:
                continue
            code = _rebuild(keyword.value, scopes, visible, set(), model, depth=0, functions=True)
            if code is not None and all(code != f[0] for f in found):
                shown = code if len(code) <= 60 else code[:59] + "…"
                found.append((code, f"{param}={shown} (as line {keyword.value.lineno} passes it)", False))
                if len(found) == 2:
                    return found
    return found


def _imported_as(tree: ast.Module, name: str, stem: str) -> set[str]:
    """The spellings a file calls the class by: `GPT` from `from model import GPT`, `model.GPT` from
    `import model` (the model file's module, by its last name)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[-1] == stem:
                found |= {(a.asname or name) if a.name == name else name for a in node.names if a.name in (name, "*")}
            found |= {f"{a.asname or a.name}.{name}" for a in node.names if a.name == stem}  # from . import model
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[-1] == stem:
                    found.add(f"{alias.asname or alias.name}.{name}")
    return found


def _calls(tree: ast.Module, aliases: set[str]) -> list[tuple[ast.Call, list[list[ast.stmt]]]]:
    """Each call of the class, with the bodies of the scopes it sees, innermost first (its function's, then
    the module's); a call inside a model class is that model's own business."""
    return [(call, scopes) for call, scopes in _all_calls(tree.body) if ast.unparse(call.func) in aliases]


def _assignments(scope: list[ast.stmt], name: str) -> list[ast.AST]:
    """Every statement of the scope (nested blocks included, nested defs not) that binds or mutates `name`."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(scope)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store | ast.Del):
            found.append(node)
        elif isinstance(node, ast.Subscript | ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            base = node.value
            while isinstance(base, ast.Subscript | ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id == name:
                found.append(node)
        elif isinstance(node, ast.Global | ast.Nonlocal) and name in node.names:
            found.append(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval"):
            found.append(node)  # `exec(open('configurator.py').read())` may rebind anything
        stack.extend(ast.iter_child_nodes(node))
    return found


def _rebuild(
    node: ast.expr,
    scopes: list[list[ast.stmt]],
    visible: Visible,
    aliases: set[str],
    name: str,
    depth: int,
    functions: bool = False,
) -> str | None:
    """The expression as code the model file can run: literals, arithmetic, containers, and calls of classes
    the model file sees (and, with `functions`, of the functions it defines or imports: `decode(arch)`), with
    names replaced by the single literal or constructor they are bound to."""
    if depth > 6:
        return None
    again = lambda n: _rebuild(n, scopes, visible, aliases, name, depth + 1, functions)  # noqa: E731
    if isinstance(node, ast.Constant):
        return repr(node.value)
    if isinstance(node, ast.Name):
        if node.id in ("True", "False", "None"):
            return node.id
        for index, scope in enumerate(scopes):  # the innermost scope that binds the name, once, plainly
            bindings = _assignments(scope, node.id)
            if not bindings:
                passed = _passed(scopes[index:], node.id) if depth < 5 else None
                if passed is None:
                    continue
                return _rebuild(passed[0], passed[1], visible, aliases, name, depth + 1, functions)
            value = (
                _statement_binding(scope, node.id) or _loop_over_literal(scope, node.id) if len(bindings) == 1 else None
            )
            if value is None:  # bound twice, mutated, or next to an `exec` that may rebind anything
                return None
            return again(value)
        return None
    if isinstance(node, ast.Attribute):  # `torch.nn.EmbeddingBag`: a name of a module the model file imports
        root: ast.expr = node
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in visible.modules:
            return ast.unparse(node)
        default = _option_default(scopes, node)  # `args.latent_dim` of `args = parser.parse_args()`
        return again(default) if default is not None else None
    if isinstance(node, ast.Dict):  # `kwargs={"mode": "sum"}`
        keys = [again(k) if k is not None else None for k in node.keys]
        values = [again(v) for v in node.values]
        if any(k is None for k in keys) or any(v is None for v in values):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, values, strict=True)) + "}"
    if isinstance(node, ast.UnaryOp | ast.BinOp):
        parts = [again(n) for n in ([node.operand] if isinstance(node, ast.UnaryOp) else [node.left, node.right])]
        if any(p is None for p in parts):
            return None
        if isinstance(node, ast.UnaryOp):
            return f"({_UNARY[type(node.op)]}{parts[0]})" if type(node.op) in _UNARY else None
        return f"({parts[0]} {_OPS[type(node.op)]} {parts[1]})" if type(node.op) in _OPS else None
    if isinstance(node, ast.Tuple | ast.List):
        parts = [again(e) for e in node.elts]
        if any(p is None for p in parts):
            return None
        inner = ", ".join(parts)  # type: ignore[arg-type]
        return f"[{inner}]" if isinstance(node, ast.List) else f"({inner}{',' if len(parts) == 1 else ''})"
    if isinstance(node, ast.Call):
        callee = ast.unparse(node.func)
        if callee in aliases:
            callee = name
        elif callee == "dict":
            pass
        elif callee.split(".")[-1] in visible.classes and callee.split(".")[-1] in visible.bound:
            callee = callee.split(".")[-1]
        elif not (functions and callee in visible.bound):
            return None
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            return None
        args = [again(a) for a in node.args]
        kwargs = [(k.arg, again(k.value)) for k in node.keywords]
        if any(a is None for a in args) or any(v is None for _, v in kwargs):
            return None
        return f"{callee}({', '.join([*args, *(f'{k}={v}' for k, v in kwargs)])})"  # type: ignore[list-item]
    return None


_HANDS_ON = {"rpc_async", "rpc_sync", "remote", "spawn", "start_processes", "Process", "Thread", "submit"}


def _passed(scopes: list[list[ast.stmt]], name: str) -> tuple[ast.expr, list[list[ast.stmt]]] | None:
    """What a name no statement of its scope binds stands for, with the scopes to read that in: a parameter of
    the function the scope is the body of, as a call of that function in the module passes it — directly, or
    handed to another process or worker (`rpc.rpc_async(to, _run_trainer, args=(module, rank))`,
    `mp.spawn(run, args=(n,))` whose first parameter is the process index, `Process(target=run, args=...)`),
    else the parameter's default."""
    module = scopes[-1]
    function = next(
        (
            n
            for n in ast.walk(ast.Module(body=module, type_ignores=[]))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.body is scopes[0]
        ),
        None,
    )
    if function is None:
        return None
    params = [*function.args.posonlyargs, *function.args.args]
    position = next((i for i, a in enumerate(params) if a.arg == name), None)
    if position is None:
        return None
    for call, call_scopes in _all_calls(module):
        handed = _arguments_for(call, function.name)
        if handed is None:
            continue
        args, keywords, shift = handed
        if position < shift:
            return ast.Constant(0), call_scopes  # mp.spawn's process index: the first process
        if position - shift < len(args) and not any(isinstance(a, ast.Starred) for a in args[: position - shift + 1]):
            return args[position - shift], call_scopes
        if name in keywords:
            return keywords[name], call_scopes
    defaults = function.args.defaults
    first_default = len(params) - len(defaults)
    if position >= first_default:
        return defaults[position - first_default], [module]
    return None


def _loop_over_literal(scope: list[ast.stmt], name: str) -> ast.expr | None:
    """`for name in [0, 1]:` / `for name in range(2):` in the scope: the first value the loop binds."""
    for node in ast.walk(ast.Module(body=scope, type_ignores=[])):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and node.target.id == name:
            values = node.iter
            if isinstance(values, ast.List | ast.Tuple) and values.elts:
                return values.elts[0]
            if isinstance(values, ast.Call) and ast.unparse(values.func) == "range" and len(values.args) == 1:
                return ast.Constant(0)
    return None


def _all_calls(module: list[ast.stmt]) -> list[tuple[ast.Call, list[list[ast.stmt]]]]:
    """Every call in the module's functions and top level (not in classes), with the scopes it sees."""
    found: list[tuple[ast.Call, list[list[ast.stmt]]]] = []

    def visit(body: list[ast.stmt], scopes: list[list[ast.stmt]]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(stmt.body, [stmt.body, *scopes])
            elif not isinstance(stmt, ast.ClassDef):
                found.extend((n, scopes) for n in ast.walk(stmt) if isinstance(n, ast.Call))

    visit(module, [module])
    return found


def _arguments_for(call: ast.Call, function: str) -> tuple[list[ast.expr], dict[str, ast.expr], int] | None:
    """The arguments `call` gives `function` (positional, keyword, how many leading parameters the callee fills
    itself), where it calls it or hands it on; None where it does neither."""
    if isinstance(call.func, ast.Name) and call.func.id == function:
        return list(call.args), {k.arg: k.value for k in call.keywords if k.arg}, 0
    callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if callee not in _HANDS_ON:
        return None
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    handed = [a for a in call.args[:2] if isinstance(a, ast.Name) and a.id == function]
    target = keywords.get("target", keywords.get("func", keywords.get("fn")))
    if not handed and not (isinstance(target, ast.Name) and target.id == function):
        return None
    if callee == "submit":  # executor.submit(fn, *args)
        return list(call.args[1:]), {}, 0
    packed = keywords.get("args")
    if packed is None and callee in ("spawn", "start_processes") and len(call.args) > 1:
        packed = call.args[1]
    if packed is None and callee in ("rpc_async", "rpc_sync", "remote") and len(call.args) > 2:
        packed = call.args[2]
    args = list(packed.elts) if isinstance(packed, ast.Tuple | ast.List) else []
    named = keywords.get("kwargs")
    by_name: dict[str, ast.expr] = {}
    if isinstance(named, ast.Dict):
        pairs = zip(named.keys, named.values, strict=True)
        by_name = {k.value: v for k, v in pairs if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return args, by_name, 1 if callee in ("spawn", "start_processes") else 0


_UNARY = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~"}
_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Div: "/", ast.Mod: "%", ast.Pow: "**"}


def _option_default(scopes: list[list[ast.stmt]], node: ast.Attribute) -> ast.expr | None:
    """`args.latent_dim`, where `args = parser.parse_args()` and `parser.add_argument("--latent_dim",
    default=30)` in the same scope: the option's default, what a run with no command-line options gives."""
    if not isinstance(node.value, ast.Name):
        return None
    for scope in scopes:
        parsed = _statement_binding(scope, node.value.id)
        if parsed is None:
            continue
        if not (isinstance(parsed, ast.Call) and isinstance(parsed.func, ast.Attribute) and not parsed.args):
            return None
        if parsed.func.attr != "parse_args" or not isinstance(parsed.func.value, ast.Name):
            return None
        parser = parsed.func.value.id
        for stmt in scope:
            call = stmt.value if isinstance(stmt, ast.Expr) else None
            if not (isinstance(call, ast.Call) and ast.unparse(call.func) == f"{parser}.add_argument"):
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            flags = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            named = [f for f in flags if f.startswith("--")] or flags
            dest = keywords.get("dest")
            name = dest.value if isinstance(dest, ast.Constant) else (named[0].lstrip("-") if named else "")
            if str(name).replace("-", "_") == node.attr:
                action = keywords.get("action")
                if "default" not in keywords and isinstance(action, ast.Constant) and action.value == "store_true":
                    return ast.Constant(False)
                return keywords.get("default")
        return None
    return None


def _statement_binding(scope: list[ast.stmt], name: str) -> ast.expr | None:
    """The value of the one plain assignment `name = value` (or `name: T = value`) in the scope."""
    stack: list[ast.AST] = list(scope)
    while stack:
        inner = stack.pop()
        if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(inner, ast.Assign) and len(inner.targets) == 1:
            target = inner.targets[0]
            if isinstance(target, ast.Name) and target.id == name:
                return inner.value
        if isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name) and inner.target.id == name:
            return inner.value
        stack.extend(ast.iter_child_nodes(inner))
    return None
