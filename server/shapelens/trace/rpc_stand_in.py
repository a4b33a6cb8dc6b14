"""A single-process stand-in for `torch.distributed.rpc` (and DDP) while a trace runs (#8).

Models written for an RPC group build their parts on other workers (`rpc.remote(ps, EmbeddingTable, ...)`),
hold them through an `RRef` and call them in `forward` (`rref.rpc_sync().forward(x)`, `x_rref.to_here()`,
`rpc.rpc_sync(rref.owner(), fn, args)`); a dense part is wrapped in `DistributedDataParallel` in `__init__`.
None of that runs without a running group, which a shape trace has not and must not start (no sockets, no
processes). The shapes do not depend on where a part lives, so here every worker is this process: a remote
call is a local call, an `RRef` holds its value, a future is already complete, `init_rpc`/`shutdown` do
nothing, and DDP is a thin wrapper that forwards to its module. Installed in the trace child only
(trace/patches.py), where torch is patched for the one trace and thrown away with the process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import torch
import torch.nn.parallel.distributed
from torch import nn


class WorkerInfo:
    """What `rpc.get_worker_info()` gives: a worker's name and id (every worker is this process)."""

    def __init__(self, name: str, id: int) -> None:
        self.name = name
        self.id = id

    def __repr__(self) -> str:
        return f"WorkerInfo(id={self.id}, name={self.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkerInfo) and (other.name, other.id) == (self.name, self.id)

    def __hash__(self) -> int:
        return hash((self.name, self.id))


class _Workers:
    """The names the code gave its workers, each with an id; this process is the one `init_rpc` named."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.current = "worker0"

    def info(self, name: str | None = None) -> WorkerInfo:
        name = self.current if name is None else name
        return WorkerInfo(name, self.ids.setdefault(name, len(self.ids)))

    def of(self, to: Any) -> WorkerInfo:
        if isinstance(to, WorkerInfo):
            return to
        if isinstance(to, int):
            named = next((n for n, i in self.ids.items() if i == to), f"worker{to}")
            return WorkerInfo(named, self.ids.setdefault(named, to))
        return self.info(str(to))


_WORKERS = _Workers()


def _call(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Run what the remote worker would, here; an `@rpc.functions.async_execution` function's future is
    waited on, as the real call does."""
    value = fn(*(args or ()), **(kwargs or {}))
    if getattr(fn, "_wrapped_async_rpc_function", None) is not None and isinstance(value, torch.futures.Future):
        return value.wait()
    return value


def _done(thunk: Callable[[], Any]) -> torch.futures.Future[Any]:
    """An already-completed future holding the call's value, or its error (raised by `wait()`, as a failed
    remote call's future does)."""
    future: torch.futures.Future[Any] = torch.futures.Future()
    try:
        future.set_result(thunk())
    except Exception as err:  # the caller sees it at wait(), where the real future raises it
        future.set_exception(err)
    return future


class _Proxy:
    """`rref.rpc_sync()` / `.rpc_async()` / `.remote()`: each method of the held value, called here."""

    def __init__(self, rref: LocalRRef[Any], wrap: Callable[[Callable[[], Any]], Any]) -> None:
        self._rref = rref
        self._wrap = wrap

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._rref.local_value(), name)
        return lambda *args, **kwargs: self._wrap(lambda: method(*args, **kwargs))


T = TypeVar("T")


class LocalRRef(Generic[T]):
    """An RRef whose owner is this process: it holds its value (generic as `rpc.RRef` is: `RRef[Tensor]`)."""

    def __init__(self, value: Any, type_hint: Any = None, owner: WorkerInfo | None = None) -> None:
        self._value = value
        self._owner = owner or _WORKERS.info()

    def to_here(self, timeout: float = 0.0) -> Any:
        return self._value

    def local_value(self) -> Any:
        return self._value

    def owner(self) -> WorkerInfo:
        return self._owner

    def owner_name(self) -> str:
        return self._owner.name

    def is_owner(self) -> bool:
        return True

    def confirmed_by_owner(self) -> bool:
        return True

    def rpc_sync(self, timeout: float = 0.0) -> Any:
        return _Proxy(self, lambda thunk: thunk())

    def rpc_async(self, timeout: float = 0.0) -> Any:
        return _Proxy(self, _done)

    def remote(self, timeout: float = 0.0) -> Any:
        return _Proxy(self, lambda thunk: LocalRRef(thunk()))

    def backward(self, *args: Any, **kwargs: Any) -> None:
        """Distributed autograd: nothing a shape needs."""

    def __repr__(self) -> str:
        return f"LocalRRef({self._value!r})"


def remote(
    to: Any, func: Callable[..., Any], args: Any = None, kwargs: Any = None, timeout: float = 0.0
) -> LocalRRef[Any]:
    return LocalRRef(_call(func, args, kwargs), owner=_WORKERS.of(to))


def rpc_sync(to: Any, func: Callable[..., Any], args: Any = None, kwargs: Any = None, timeout: float = 0.0) -> Any:
    return _call(func, args, kwargs)


def rpc_async(
    to: Any, func: Callable[..., Any], args: Any = None, kwargs: Any = None, timeout: float = 0.0
) -> torch.futures.Future[Any]:
    return _done(lambda: _call(func, args, kwargs))


def init_rpc(name: str, backend: Any = None, rank: int = -1, world_size: int | None = None, **_: Any) -> None:
    """No group is started; the name is this process's worker name from here on."""
    _WORKERS.current = name
    if rank >= 0:
        _WORKERS.ids.setdefault(name, rank)


def shutdown(graceful: bool = True, timeout: float = 0.0) -> None:
    """Nothing was started."""


def get_worker_info(worker_name: str | None = None) -> WorkerInfo:
    return _WORKERS.info(worker_name)


class DistributedDataParallel(nn.Module):
    """DDP without a process group: the wrapped module, called as it is (DDP's `__init__` needs an initialized
    default group; its forward adds only gradient synchronisation, no shape)."""

    def __init__(self, module: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.module = module

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        yield


class RemoteModule(nn.Module):
    """`torch.distributed.nn.RemoteModule` in one process: the module is built here (its `remote_device` is this
    process too), `forward`/`forward_async` call it, `remote_parameters()` gives RRefs of its parameters and
    `module_rref` holds it — the sparse part of a hybrid model, with the shapes it has on its parameter server."""

    def __init__(
        self, remote_device: str, module_cls: Callable[..., nn.Module], args: Any = None, kwargs: Any = None, **_: Any
    ) -> None:
        super().__init__()
        self.module = module_cls(*(args or ()), **(kwargs or {}))
        self.module_rref: LocalRRef[nn.Module] = LocalRRef(self.module)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def forward_async(self, *args: Any, **kwargs: Any) -> torch.futures.Future[Any]:
        return _done(lambda: self.module(*args, **kwargs))

    def remote_parameters(self, recurse: bool = True) -> list[LocalRRef[Any]]:
        return [LocalRRef(p) for p in self.module.parameters(recurse)]

    def get_module_rref(self) -> LocalRRef[nn.Module]:
        return self.module_rref


@contextlib.contextmanager
def _autograd_context() -> Iterator[int]:
    yield 0


def install() -> None:
    """Put the stand-in where user code finds it: `torch.distributed.rpc` (its functions and `RRef`),
    `torch.distributed.autograd.context`, DDP under `torch.nn.parallel` and `torch.distributed.nn.RemoteModule`.
    A torch built without distributed support has no `torch.distributed.rpc` to stand in for: nothing is
    installed there."""
    try:
        import torch.distributed.autograd as dist_autograd
        import torch.distributed.rpc as rpc
    except ImportError:
        return
    for name, value in (("remote", remote), ("rpc_sync", rpc_sync), ("rpc_async", rpc_async), ("RRef", LocalRRef),
                        ("init_rpc", init_rpc), ("shutdown", shutdown), ("get_worker_info", get_worker_info),
                        ("WorkerInfo", WorkerInfo), ("is_available", lambda: True)):  # fmt: skip
        setattr(rpc, name, value)
    setattr(dist_autograd, "context", _autograd_context)  # noqa: B010 (mypy: assigning over a class)
    setattr(torch.nn.parallel, "DistributedDataParallel", DistributedDataParallel)  # noqa: B010
    setattr(torch.nn.parallel.distributed, "DistributedDataParallel", DistributedDataParallel)  # noqa: B010
    with contextlib.suppress(ImportError):  # its template is made when torch.distributed.nn is first imported
        import torch.distributed.nn as dist_nn
        import torch.distributed.nn.api.remote_module as remote_module

        setattr(dist_nn, "RemoteModule", RemoteModule)  # noqa: B010
        setattr(remote_module, "RemoteModule", RemoteModule)  # noqa: B010
