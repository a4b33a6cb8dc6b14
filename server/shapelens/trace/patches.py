"""The patches that make user code traceable: where modules are built, every layer call, flatten factors, explicit
device moves redirected to the trace device, and the RNN shape rule on meta."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from shapelens.trace import rnn
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
    if ctx.device.type == "meta":  # real-device traces run the real kernels
        rnn.install()
