"""Keep the first meta op from importing torch._dynamo (about as long as `import torch` itself).

torch wraps its Python kernels and decompositions in `torch._disable_dynamo`, whose first call of each
wrapped function runs `import torch._dynamo` to ask dynamo not to compile it. A trace never compiles: until
something imports dynamo (user code calling `torch.compile`, a library asking `is_compiling()`, the
symbolic pass), no frame can be under dynamo and "disabled" is the same as calling the function. So each
wrapped function gets, in the cache slot torch's own wrapper reads first, a stand-in that calls the function
as it is while dynamo is not imported, and dynamo's real `disable` of it from the moment dynamo is — exactly
what torch would have called. Nothing of dynamo is faked or replaced: it is only not imported early.
"""

from __future__ import annotations

import functools
import gc
import sys
import types
from collections.abc import Callable
from typing import Any

CACHE = "__dynamo_disable"  # the attribute torch._compile's wrapper caches dynamo's disabled function in


def _stand_in(fn: Callable[..., Any], recursive: bool) -> Callable[..., Any]:
    real: Callable[..., Any] | None = None

    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal real
        if real is None:
            dynamo = sys.modules.get("torch._dynamo")
            disable = getattr(dynamo, "disable", None)
            if disable is None:  # not imported (or still importing): nothing can be compiling this frame
                return fn(*args, **kwargs)
            real = disable(fn, recursive, wrapping=False)  # what torch's wrapper does on its first call
        return real(*args, **kwargs)

    return call


def _give(fn: Callable[..., Any], recursive: bool) -> int:
    if getattr(fn, CACHE, None) is not None:  # already called once: dynamo's own answer is cached
        return 0
    try:
        setattr(fn, CACHE, _stand_in(fn, recursive))
    except (AttributeError, TypeError):  # takes no attributes: torch's wrapper will import dynamo for it
        return 0
    return 1


def _wrapper_code(decorator: Callable[..., Any]) -> types.CodeType | None:
    """The code of the wrapper `_disable_dynamo` makes, if it is the one this module knows (fn, recursive)."""
    for const in getattr(decorator, "__code__", types.SimpleNamespace(co_consts=())).co_consts:
        if isinstance(const, types.CodeType) and const.co_freevars == ("fn", "recursive"):
            return const
    return None


def install() -> int:
    """Give every function torch wrapped so far (and every one it wraps from now on) the stand-in.
    Returns how many were given one; 0 when this torch's wrapper is not the one we know (nothing changed)."""
    import torch
    import torch._compile as compile_module

    original = compile_module._disable_dynamo
    code = _wrapper_code(original)
    if code is None or "torch._dynamo" in sys.modules:
        return 0
    count = 0
    for obj in gc.get_referrers(code):  # the wrappers made so far (≈40 ms; a walk of gc.get_objects() ≈70 ms)
        if type(obj) is types.FunctionType and obj.__code__ is code and obj.__closure__ is not None:
            try:
                cells = dict(zip(code.co_freevars, (c.cell_contents for c in obj.__closure__), strict=True))
            except ValueError:  # an empty cell: not a wrapper we know, left as torch made it
                continue
            count += _give(cells["fn"], bool(cells["recursive"]))

    @functools.wraps(original)
    def disable_dynamo(fn: Callable[..., Any] | None = None, recursive: bool = True) -> Any:
        wrapped = original(fn, recursive)
        if fn is not None:
            _give(fn, recursive)
        return wrapped

    compile_module._disable_dynamo = disable_dynamo  # type: ignore[assignment]
    torch._disable_dynamo = disable_dynamo  # type: ignore[assignment]
    return count
