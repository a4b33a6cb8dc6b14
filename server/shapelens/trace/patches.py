"""The patches that make user code traceable: where modules are built, every layer call, flatten factors, explicit
device moves redirected to the trace device, and the RNN shape rule on meta; on meta also the checks real
kernels make that meta kernels skip (dtypes of a matrix multiply), the value checks stock attention makes
that meta cannot answer, a DataLoader's sampling (on the CPU) and `x.type(torch.FloatTensor)` (a dtype
change); and a command line parsed as empty (a script's `parse_args()` gives its defaults)."""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from shapelens.trace import rnn, rpc_stand_in
from shapelens.trace.context import Context
from shapelens.trace.recording import Recorder, note_flatten_factors


def install_patches(recorder: Recorder, ctx: Context) -> None:
    """Record where modules are built, watch every layer call, keep flatten factors, redirect explicit
    device moves to the trace device, and use the RNN shape rule on meta."""
    original_init = nn.Module.__init__

    def module_init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        recorder.note_construction(self)

    nn.Module.__init__ = module_init  # type: ignore[method-assign]
    nn.modules.module.register_module_forward_pre_hook(recorder.pre_hook)  # type: ignore[arg-type]
    nn.modules.module.register_module_forward_hook(recorder.forward_hook)

    def keep_factors(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)  # torch.compile and inspect know a function by its name
        def wrapper(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            out = original(tensor, *args, **kwargs)
            if isinstance(tensor, torch.Tensor):
                note_flatten_factors(out, tensor)
            return out

        return wrapper

    for owner, name in ((torch.Tensor, "view"), (torch.Tensor, "reshape"), (torch.Tensor, "flatten"),
                        (torch, "flatten"), (torch, "reshape")):  # fmt: skip
        setattr(owner, name, keep_factors(getattr(owner, name)))
    flatten_forward = nn.Flatten.forward
    nn.Flatten.forward = lambda self, x: keep_factors(lambda t: flatten_forward(self, t))(x)  # type: ignore[method-assign,assignment]

    def redirect(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], str | torch.device | int) and not isinstance(args[0], bool):
                args = (ctx.device, *args[1:])
            if "device" in kwargs:
                kwargs["device"] = ctx.device
            return original(self, *args, **kwargs)

        return wrapper

    torch.Tensor.to = redirect(torch.Tensor.to)  # type: ignore[method-assign]
    nn.Module.to = redirect(nn.Module.to)  # type: ignore[method-assign]
    torch.Tensor.cuda = lambda self, *a, **k: self.to(ctx.device)  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self.to(ctx.device)  # type: ignore[method-assign]
    # `out.cpu()` is a move too (pytorch/examples' RPC shards return their output with it): meta cannot copy out
    torch.Tensor.cpu = lambda self, *a, **k: self.to(ctx.device)  # type: ignore[method-assign]
    if ctx.device.type == "meta":  # real-device traces run the real kernels
        rnn.install()
        check_matmul_dtypes()
        attention_without_values()
        loaders_sample_on_cpu()
        tensor_types_keep_the_device()
        legacy_constructors_follow_the_default_device()
    empty_command_line()
    rpc_stand_in.install()  # a model written for an RPC group runs in this one process (trace/rpc_stand_in.py)


def _type_name(dtype: torch.dtype) -> str:
    """torch's own name for a dtype in kernel messages: Float, Double, Half, BFloat16, Long, ..."""
    return str(torch.empty(0, dtype=dtype, device="meta").type()).removeprefix("torch.meta.").removesuffix("Tensor")


def check_matmul_dtypes() -> None:
    """Meta's matrix multiply accepts operands of different dtypes; the real run raises. Raise as it does
    (`mat1 and mat2 must have the same dtype, but got Double and Float`), so the trace reports it."""
    from torch.nn import functional

    linear = functional.linear

    @functools.wraps(linear)
    def checked_linear(input: Any, weight: Any, bias: Any = None) -> Any:
        if isinstance(input, torch.Tensor) and isinstance(weight, torch.Tensor) and input.dtype != weight.dtype:
            raise RuntimeError(
                f"mat1 and mat2 must have the same dtype, but got {_type_name(input.dtype)} and "
                f"{_type_name(weight.dtype)}"
            )
        return linear(input, weight, bias)

    functional.linear = checked_linear

    def checked(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)  # its own name: torch.compile registers kernels by function name
        def wrapper(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype != b.dtype:
                first, second = (str(t.dtype).removeprefix("torch.") for t in (a, b))
                names = {"float64": "double", "float32": "float", "float16": "half", "int64": "long"}
                raise RuntimeError(
                    "expected m1 and m2 to have the same dtype, but got: "
                    f"{names.get(first, first)} != {names.get(second, second)}"
                )
            return original(a, b, *args, **kwargs)

        return wrapper

    for owner, name in ((torch, "matmul"), (torch, "mm"), (torch, "bmm"), (torch.Tensor, "__matmul__"),
                        (torch.Tensor, "matmul"), (torch.Tensor, "mm"), (torch.Tensor, "bmm")):  # fmt: skip
        setattr(owner, name, checked(getattr(owner, name)))


def attention_without_values() -> None:
    """Stock attention inspects a mask's values (is it causal? may the fast path run?), which meta tensors
    do not have; neither changes a shape. The fast path is off and a mask on meta is taken as given."""
    from torch.nn.modules import transformer

    torch.backends.mha.set_fastpath_enabled(False)
    detect = transformer._detect_is_causal_mask

    def detect_is_causal_mask(mask: Any, is_causal: bool | None = None, size: int | None = None) -> bool:
        if isinstance(mask, torch.Tensor) and mask.device.type == "meta" and is_causal is None:
            return False  # the mask itself is applied, which gives the same shapes as the causal hint
        return detect(mask, is_causal, size)

    transformer._detect_is_causal_mask = detect_is_causal_mask


def tensor_types_keep_the_device() -> None:
    """`x.type(torch.FloatTensor)` (PyTorch-GAN's `imgs.type(Tensor)`, `Tensor = torch.cuda.FloatTensor if cuda
    else torch.FloatTensor`) converts to a CPU or CUDA tensor type: from meta, a copy out of meta, which fails.
    On meta it changes the dtype only; the sizes are the same on every device. `x.type()` still names the type."""
    original = torch.Tensor.type

    @functools.wraps(original)
    def type_(self: torch.Tensor, dtype: Any = None, non_blocking: bool = False, **kwargs: Any) -> Any:
        dtype = getattr(dtype, "wrapped", dtype)  # torch.FloatTensor as the trace holds it: the original type
        if dtype is torch.Tensor:  # `Tensor = torch.cuda.FloatTensor if cuda else torch.Tensor`: the default type
            dtype = torch.get_default_dtype()
        if dtype is None or self.device.type != "meta":
            return original(self, dtype, non_blocking, **kwargs) if dtype is not None else original(self)
        if isinstance(dtype, str):  # "torch.FloatTensor", "torch.cuda.LongTensor"
            dtype = getattr(torch, dtype.rsplit(".", 1)[-1], dtype)
        target = getattr(dtype, "dtype", dtype)  # a tensor type (torch.FloatTensor) says its dtype
        return self.to(target) if isinstance(target, torch.dtype) else original(self, dtype, non_blocking, **kwargs)

    torch.Tensor.type = type_  # type: ignore[method-assign,assignment]


_LEGACY_TYPES = ("FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor",
                 "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor")  # fmt: skip


def _legacy(original: Callable[..., Any], dtype: torch.dtype, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`torch.FloatTensor(64, 1)`, `torch.FloatTensor(np.random.normal(0, 1, (64, 100)))` on the default device, as
    `torch.empty`/`torch.tensor` make them: the legacy constructors always make a CPU tensor, which a meta trace
    then meets as "Tensor on device meta is not on the expected device cpu" (PyTorch-GAN's latent
    `z = Variable(Tensor(np.random.normal(...)))`, its `valid = Tensor(n, 1).fill_(1.0)`)."""
    device = torch.get_default_device()
    if device.type != "meta" or kwargs.get("device") is not None:
        return original(*args, **kwargs)
    if args and not kwargs and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        return torch.empty(args, dtype=dtype)
    if len(args) == 1 and not kwargs and isinstance(args[0], torch.Size):
        return torch.empty(args[0], dtype=dtype)
    made = original(*args, **kwargs)
    return made.to(device) if isinstance(made, torch.Tensor) and made.device.type == "cpu" else made


def legacy_constructors_follow_the_default_device() -> None:
    """On meta, the typed legacy constructors (`torch.FloatTensor(...)`, `torch.LongTensor(...)`) make their
    tensor on the trace device (`_legacy`): each becomes a class of the same name whose instances are the
    original's (`isinstance(x, torch.FloatTensor)` holds as before) and whose `dtype` says its dtype
    (`x.type(Tensor)`). `torch.from_numpy` follows it too. `torch.Tensor(...)` itself is left as it is: torch's
    compiler keeps its own table of `torch.Tensor.__new__`, and a replaced one breaks it."""
    for name in _LEGACY_TYPES:
        original = getattr(torch, name, None)
        if original is None or not isinstance(getattr(original, "dtype", None), torch.dtype):
            continue

        class Legacy(type):
            wrapped: Any = original

            def __instancecheck__(cls, instance: Any) -> bool:
                return isinstance(instance, cls.wrapped)

            def __call__(cls, *args: Any, **kwargs: Any) -> Any:
                return _legacy(cls.wrapped, cls.wrapped.dtype, args, kwargs)

        setattr(torch, name, Legacy(name, (), {"dtype": original.dtype, "is_cuda": False, "is_sparse": False,
                                               "__module__": "torch"}))  # fmt: skip
    from_numpy = torch.from_numpy

    @functools.wraps(from_numpy)
    def numpy_on_the_default_device(array: Any) -> torch.Tensor:
        """`torch.from_numpy(images)` shares the array's CPU memory: on meta, a CPU tensor among meta ones (a
        model called on it fails on the device, not on its shape), where `torch.tensor(images)` is meta."""
        made = from_numpy(array)
        device = torch.get_default_device()
        return made.to(device) if device.type == "meta" else made

    torch.from_numpy = numpy_on_the_default_device  # type: ignore[assignment]


def loaders_sample_on_cpu() -> None:
    """A DataLoader's iterator draws its shuffle seed with a tensor of the default device (`.item()` of a random
    int64): on meta it has no value, so `enumerate(loader)`, which makes the iterator before the loop does
    (recording.Loop samples on the CPU itself), failed. The iterator is made on the CPU; its batches are still
    what the dataset holds."""
    data = torch.utils.data.DataLoader
    original = data.__iter__

    @functools.wraps(original)
    def make_iterator(self: Any) -> Any:
        with torch.device("cpu"):
            return original(self)

    data.__iter__ = make_iterator  # type: ignore[method-assign]


def empty_command_line() -> None:
    """A trace reads no command line: `parser.parse_args()` gives the parser's defaults (a required option
    its default, or its first choice, or None), never an exit; and an option added twice (a slice run again)
    replaces the first."""
    parse_known = argparse.ArgumentParser.parse_known_args

    def parse_known_args(
        self: argparse.ArgumentParser, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        if args is not None:
            return parse_known(self, args, namespace)  # type: ignore[no-any-return]
        namespace = argparse.Namespace() if namespace is None else namespace
        for action in self._actions:
            if action.dest is argparse.SUPPRESS or action.default is argparse.SUPPRESS:
                continue
            default = action.default
            if default is None and action.required and action.choices:
                default = next(iter(action.choices))  # a required choice: the first one the script offers
            if isinstance(default, str) and callable(action.type):
                with contextlib.suppress(Exception):  # argparse would reject it; the string is the best there is
                    default = action.type(default)
            if not hasattr(namespace, action.dest):
                setattr(namespace, action.dest, default)
        return namespace, []

    argparse.ArgumentParser.parse_known_args = parse_known_args  # type: ignore[assignment]
    argparse.ArgumentParser.parse_args = lambda self, args=None, namespace=None: (  # type: ignore[assignment,method-assign]
        parse_known(self, args, namespace)[0] if args is not None else parse_known_args(self, None, namespace)[0]
    )
    init = argparse.ArgumentParser.__init__

    def parser_init(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("conflict_handler", "resolve")
        init(self, *args, **kwargs)

    argparse.ArgumentParser.__init__ = parser_init  # type: ignore[method-assign]
