"""Library model classes in the trace child: building a class a plan names with `{"build": "ClassName"}`, and
the inputs a ready-made library model takes.

A transformers model (`GPT2LMHeadModel`, `LlamaForCausalLM`, `BertModel`, ...) needs a config; its own
defaults are the full-size model (GPT-2: 12 layers of 768, Llama: 32 layers of 4096), far more than a shape
trace needs. So the class's `config_class` is built small: 2 layers, width 64, 2 heads, 128 inner, a
vocabulary of 1000 and 128 positions, every other field at its default. Shapes depend on those sizes, so
what was made up is said (`synthesized_notes`). Nothing is ever downloaded: no `from_pretrained`, and
`HF_HUB_OFFLINE` is set for every child this worker forks.

Any other class is built with its defaults (`cls()`).

Inputs: a model whose `forward` starts with `input_ids` takes int64 token ids [2, 16] below its vocabulary;
one that starts with `pixel_values` an image batch [2, channels, size, size] from its config; a timm model
the input size of its `pretrained_cfg`. Everything else is left to the generic inference (None).

`install()` prepares the trace process for libraries: offline Hugging Face, and torchvision beside a CPU torch
(PyPI's torchvision is a CUDA build whose compiled ops cannot load beside torch+cpu; its import then dies on
registering fake kernels for `torchvision::nms`, an operator the missing library would have defined — with
the two schemas defined here instead, its pure-Python models, and timm which imports it, load and trace).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
import types
from typing import Any

import torch
from torch import nn

LAYERS, WIDTH, HEADS, INNER, VOCAB, POSITIONS = 2, 64, 2, 128, 1000, 128
SEQUENCE = 16  # tokens per row of made-up input_ids
LIBRARIES = ("transformers.", "timm.", "torchvision.")  # whose model classes the input rules know
IMAGE, PATCH = 32, 8  # a vision transformer's made-up image and patch size (16 patches)

# The usual spellings of each size across transformers' configs (GPT-2 says n_layer, BART encoder_layers,
# T5 num_layers ...); `attribute_map` maps the standard ones onto a config's own.
SMALL: dict[str, int] = {
    **dict.fromkeys(
        ("num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers",
         "num_encoder_layers", "num_decoder_layers"), LAYERS),
    **dict.fromkeys(("hidden_size", "n_embd", "d_model", "dim", "embed_dim"), WIDTH),
    **dict.fromkeys(
        ("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads",
         "decoder_attention_heads", "num_key_value_heads"), HEADS),
    **dict.fromkeys(("intermediate_size", "n_inner", "ffn_dim", "d_ff", "encoder_ffn_dim", "decoder_ffn_dim"), INNER),
    "vocab_size": VOCAB,
    **dict.fromkeys(("max_position_embeddings", "n_positions", "n_ctx"), POSITIONS),
    "image_size": IMAGE,
    "patch_size": PATCH,
}  # fmt: skip


def is_transformers_model(cls: type) -> bool:
    """A transformers `PreTrainedModel` subclass: it has a `config_class` that is a `PretrainedConfig`."""
    config_class = getattr(cls, "config_class", None)
    return isinstance(config_class, type) and any(
        base.__name__ in ("PretrainedConfig", "PreTrainedConfig") for base in config_class.__mro__
    )


def small_config(config_class: type) -> tuple[Any, list[str]]:
    """The config class's defaults with every size in `SMALL` it has made small, and notes of what was set."""
    default = config_class()
    attribute_map: dict[str, str] = dict(getattr(config_class, "attribute_map", {}) or {})
    overrides: dict[str, Any] = {}
    for name, value in SMALL.items():
        own = attribute_map.get(name, name)
        if own in overrides or not _has(default, own):
            continue
        current = getattr(default, own, None)
        if isinstance(current, int) and not isinstance(current, bool) and current > value:
            overrides[own] = value
    overrides.update(_per_layer_lists(default, overrides))
    vocab = overrides.get(attribute_map.get("vocab_size", "vocab_size"))
    tokens = {}
    for special in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"):
        token = getattr(default, special, None)
        # GPT-2's 50256 lies outside a vocabulary made small
        if isinstance(vocab, int) and isinstance(token, int) and token >= vocab:
            tokens[special] = vocab - 1
    config = config_class(**overrides, **tokens)
    for own, value in overrides.items():  # a config that ignores a keyword still takes the attribute
        if getattr(config, own, None) != value:
            setattr(config, own, value)
    heads = getattr(config, "num_attention_heads", None)
    width = getattr(config, "hidden_size", None)
    if _has(config, "head_dim") and isinstance(heads, int) and isinstance(width, int) and heads:
        with contextlib.suppress(AttributeError):  # a property on some configs (Falcon): derived already
            config.head_dim = width // heads  # derived from the defaults (4096 / 32) when the config was made
    layers = getattr(config, "num_hidden_layers", None)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and isinstance(layers, int) and len(layer_types) > layers:
        config.layer_types = layer_types[:layers]  # one entry per layer (sliding/full attention)
    notes = [f"{name}={value}" for name, value in overrides.items() if not isinstance(value, list)]
    return config, notes


def _per_layer_lists(default: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """Lists with one entry per layer, cut to the layers kept (a config checks their length): GPT-Neo's
    `attention_types` [[["global", "local"], 12]] becomes [[["global", "local"], 1]]."""
    found: dict[str, Any] = {}
    layers = next((overrides[n] for n in SMALL if SMALL[n] == LAYERS and n in overrides), None)
    before = next((getattr(default, n) for n in SMALL if SMALL[n] == LAYERS and n in overrides), None)
    if not isinstance(layers, int) or not isinstance(before, int):
        return found
    types = getattr(default, "attention_types", None)
    if isinstance(types, list) and types and all(isinstance(t, list) and len(t) == 2 for t in types):
        pattern = types[0][0]
        if isinstance(pattern, list) and pattern and layers % len(pattern) == 0:
            found["attention_types"] = [[pattern, layers // len(pattern)]]
    try:
        fields = dict(vars(default))
    except TypeError:
        return found
    for name, value in fields.items():
        if isinstance(value, list) and before >= 3 and len(value) == before and name not in found:
            found[name] = value[:layers]  # layer_types, block_types, ...
    return found


def _has(config: Any, name: str) -> bool:
    try:
        return hasattr(config, name)
    except Exception:  # a property that needs something the defaults lack
        return False


def build(cls: Any) -> Any:
    """The plan item `{"build": "ClassName"}`: a transformers model from its config made small; a block of a
    transformers model file that takes the config (`GPT2Block(config, layer_idx)`) with that config made
    small; else the class with its defaults."""
    if isinstance(cls, type) and is_transformers_model(cls):
        config, _ = small_config(cls.config_class)  # type: ignore[attr-defined]
        return cls(config)
    block = _block_arguments(cls)
    if block is not None:
        return cls(**block[0])
    return cls()


# A block's other required parameters, by name (`GPT2MLP(intermediate_size, config)`, `LlamaAttention(config,
# layer_idx)`); a block that needs anything else is built with its defaults, and fails as it would.
BLOCK_PARAMETERS = {"layer_idx": 0, "layer_id": 0, "layer_number": 0, "intermediate_size": INNER, "hidden_size": WIDTH}


def _block_arguments(cls: Any) -> tuple[dict[str, Any], list[str]] | None:
    """Keyword arguments for a class whose first parameter is `config` in a module that imports exactly one
    config class of its name's family (GPT2Config for GPT2Block): the config made small, the rest by name."""
    if not isinstance(cls, type):
        return None
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return None
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.name == "config" for p in required):
        # `LlamaRMSNorm(hidden_size)`: a transformers block that takes only sizes
        if not required or not cls.__module__.startswith("transformers."):
            return None
        if not all(p.name in BLOCK_PARAMETERS for p in required):
            return None
        return {p.name: BLOCK_PARAMETERS[p.name] for p in required}, [
            f"{p.name}={BLOCK_PARAMETERS[p.name]}" for p in required
        ]
    config_class = _config_class_of(cls)
    if config_class is None:
        return None
    config, notes = small_config(config_class)
    arguments: dict[str, Any] = {}
    for param in required:
        if param.name == "config":
            arguments["config"] = config
        elif param.name in BLOCK_PARAMETERS:
            arguments[param.name] = BLOCK_PARAMETERS[param.name]
            notes.append(f"{param.name}={BLOCK_PARAMETERS[param.name]}")
        else:
            return None
    return arguments, notes


def _config_class_of(cls: type) -> type | None:
    module = sys.modules.get(cls.__module__)
    if module is None:
        return None
    configs = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and value.__name__.endswith("Config")
        and any(base.__name__ in ("PretrainedConfig", "PreTrainedConfig") for base in value.__mro__)
    ]
    family = [c for c in configs if cls.__name__.startswith(c.__name__.removesuffix("Config"))]
    found = family or configs
    return found[0] if len(found) == 1 else None


def synthesized_notes(cls: Any) -> list[str]:
    """What `build(cls)` made up, for the hover ("n_layer=2", ...); empty for a class built with defaults."""
    if isinstance(cls, type) and is_transformers_model(cls):
        return small_config(cls.config_class)[1]  # type: ignore[attr-defined]
    block = _block_arguments(cls)
    return block[1] if block is not None else []


def _library_class(cls: type) -> bool:
    """A class of transformers, timm or torchvision, imported (`transformers.models.gpt2...`) or in the file
    being checked, which may be one of theirs run under another name (`modeling_gpt2`)."""
    if cls.__module__.startswith(LIBRARIES):
        return True
    path = getattr(sys.modules.get(cls.__module__), "__file__", None) or ""
    return any(f"{os.sep}site-packages{os.sep}{name.rstrip('.')}{os.sep}" in path for name in LIBRARIES)


def _parameters(model: nn.Module) -> list[str]:
    """The names `forward` takes positionally or by keyword, in order."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _required(model: nn.Module) -> list[str]:
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds and p.default is p.empty]


def _first_parameter(model: nn.Module) -> str | None:
    params = _parameters(model)
    return params[0] if params else None


def library_input_specs(model: nn.Module) -> list[tuple[str, list[int], str, str]] | None:
    """The input a library model takes, as (forward parameter, dims, dtype, why this size) — keyword
    arguments, since a second input need not be forward's second parameter (T5's `decoder_input_ids`) — or
    None when no library rule knows the model (the generic inference goes on). Only a library's own classes:
    the user's models are the generic inference's to read."""
    if not _library_class(type(model)):
        return None
    config = getattr(model, "config", None)
    first = _first_parameter(model)
    if first == "input_ids":
        vocab = getattr(config, "vocab_size", None) or VOCAB
        note = f"token ids: 2 sequences of {SEQUENCE} below vocab_size={vocab}"
        dims = [2, SEQUENCE]
        if type(model).__name__.endswith("ForMultipleChoice"):  # each row holds its choices: [batch, choices, T]
            dims, note = [2, 2, SEQUENCE], f"token ids: 2 questions of 2 choices of {SEQUENCE} below vocab_size={vocab}"
        if type(model).__name__.endswith("ForSequenceClassification") and getattr(config, "pad_token_id", 0) is None:
            # it finds each row's last token by the padding token; without one it takes a single row
            dims, note = [1, SEQUENCE], f"token ids: 1 sequence of {SEQUENCE} (no pad_token_id: one row only)"
        found = [("input_ids", dims, "int64", note)]
        if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in _parameters(model):
            found.append(("decoder_input_ids", [2, SEQUENCE], "int64", note))  # T5, BART
        return found
    if first == "pixel_values" and config is not None:
        size = getattr(config, "image_size", None) or 224
        size = size if isinstance(size, int) else int(size[0])
        channels = getattr(config, "num_channels", None) or 3
        return [("pixel_values", [2, channels, size, size], "float32", f"2 images of {channels}x{size}x{size}")]
    if first == "hidden_states" and _required(model) == ["hidden_states"]:
        # a block of a transformers model (GPT2Block, BertLayer, LlamaRMSNorm): hidden states as wide as the
        # config says, else as wide as `build` made its config
        width = getattr(config, "hidden_size", None)
        width = width if isinstance(width, int) else WIDTH
        note = f"hidden states: 2 sequences of {SEQUENCE} of width {width}"
        return [("hidden_states", [2, SEQUENCE, width], "float32", note)]
    size = getattr(model, "image_size", None)  # torchvision's VisionTransformer checks the size it was built for
    if isinstance(size, int) and not isinstance(size, bool) and first is not None:
        channels = 3
        conv = getattr(model, "conv_proj", None)
        if isinstance(conv, nn.Conv2d):
            channels = conv.in_channels
        return [(first, [2, channels, size, size], "float32", f"2 images of {channels}x{size}x{size} (its image_size)")]
    pretrained = getattr(model, "pretrained_cfg", None)  # timm
    if isinstance(pretrained, dict) and isinstance(pretrained.get("input_size"), tuple | list):
        dims = [2, *(int(d) for d in pretrained["input_size"])]
        return [(first or "x", dims, "float32", f"2 images of {'x'.join(map(str, dims[1:]))} (its pretrained_cfg)")]
    return None


def library_inputs(model: nn.Module, device: torch.device) -> list[tuple[str, torch.Tensor, str]] | None:
    """`library_input_specs` as tensors on `device` (token ids below the vocabulary off meta)."""
    specs = library_input_specs(model)
    if specs is None:
        return None
    vocab = int(getattr(getattr(model, "config", None), "vocab_size", None) or VOCAB)
    found = []
    for name, dims, dtype, note in specs:
        if dtype == "int64":
            tensor = _tokens(dims, vocab, device)
        elif device.type == "meta":
            tensor = torch.zeros(dims, device=device)
        else:
            tensor = torch.randn(dims, device=device)
        found.append((name, tensor, note))
    return found


def _tokens(dims: list[int], vocab: int, device: torch.device) -> torch.Tensor:
    if device.type == "meta":
        return torch.zeros(dims, dtype=torch.int64, device=device)
    return torch.randint(0, max(1, min(vocab, 100)), dims, dtype=torch.int64, device=device)


# -- the trace process's set-up for libraries -----------------------------------------------------------------

# torchvision's Python side registers fake kernels for these operators whether or not its compiled library,
# which defines them, loaded; their schemas as torchvision's C++ declares them
TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_defined: list[Any] = []  # the torch.library.Library holding them: it must stay alive


def install() -> None:
    """Offline Hugging Face, no pretrained weights, and the torchvision fallback, once per process; cheap
    (imports nothing)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if not any(isinstance(finder, _TorchvisionFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionFinder())
    _no_pretrained_weights()


class NoWeights(dict):  # type: ignore[type-arg]
    """What `torch.hub.load_state_dict_from_url` gives in a trace: no weights. Shapes need none, and a trace
    downloads nothing (torchvision's `weights=...IMAGENET1K_V1`, `pretrained=True`, timm's pretrained URLs
    all come here); `load_state_dict` of it loads nothing, so the model keeps its fresh parameters."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url


SKIPPED_WEIGHTS: list[str] = []  # the URLs a trace did not load, for the model's notes (`weights_notes`)


def _no_weights(url: str) -> NoWeights:
    SKIPPED_WEIGHTS.append(str(url))
    return NoWeights(str(url))


def _hub_stand_in(url: str, *args: Any, **kwargs: Any) -> Any:
    return __shapelens_no_weights__(url)  # type: ignore[name-defined]  # noqa: F821  (bound in torch.hub)


def _no_pretrained_weights() -> None:
    """Every binding of `load_state_dict_from_url` (torchvision imports it by name) runs the stand-in's code:
    the function object is the same, its code is swapped."""
    import torch.hub

    hub = torch.hub.load_state_dict_from_url
    if getattr(hub, "__shapelens__", False):
        return
    torch.hub.__dict__["__shapelens_no_weights__"] = _no_weights
    hub.__code__ = _hub_stand_in.__code__
    hub.__defaults__ = None
    hub.__kwdefaults__ = None
    hub.__shapelens__ = True  # type: ignore[attr-defined]
    real_load = nn.Module.load_state_dict

    def load_state_dict(self: nn.Module, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(state_dict, NoWeights):
            return nn.modules.module._IncompatibleKeys([], [])
        return real_load(self, state_dict, *args, **kwargs)

    nn.Module.load_state_dict = load_state_dict  # type: ignore[method-assign,assignment]


def weights_notes() -> list[str]:
    """What the last model's build did not load (said once in its hover), consumed."""
    urls = sorted(set(SKIPPED_WEIGHTS))
    SKIPPED_WEIGHTS.clear()
    if not urls:
        return []
    name = urls[0].rsplit("/", 1)[-1]
    more = f" and {len(urls) - 1} more" if len(urls) > 1 else ""
    return [f"pretrained weights not loaded ({name}{more}): shapes need none, and a trace downloads nothing"]


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "torchvision":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _RetryingLoader(spec.loader)
        return spec


class _RetryingLoader(importlib.abc.Loader):
    """torchvision's own loader; when its import fails for want of its compiled operators, the schemas are
    defined and the package runs again (its submodules imported half-way are dropped first)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.real.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        try:
            self.real.exec_module(module)
        except RuntimeError as err:
            if "torchvision::" not in str(err) or _defined:
                raise
            for name in [n for n in sys.modules if n.startswith("torchvision.")]:
                del sys.modules[name]
            library = torch.library.Library("torchvision", "FRAGMENT")
            for schema in TORCHVISION_SCHEMAS:
                library.define(schema)
            _defined.append(library)
            self.real.exec_module(module)
