"""The server's settings (`shapelens.*`): typed, with defaults, validated value by value.

Settings arrive from `initializationOptions`, from `workspace/configuration` (section "shapelens") and from
`workspace/didChangeConfiguration` pushes, in whichever shape the client likes: nested
(`{"inlayHints": {"enabled": false}}`), dotted (`{"inlayHints.enabled": false}`), with or without one
`shapelens` wrapper; only the documented keys are read. A bad value never stops the server: it falls back to
that setting's default and the caller logs the warning we return, except `trusted`, where anything but an
unambiguous true (`0`, `"no"`, `"false "`, null) means untrusted.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from shapelens.core.options import DEVICES, Options

SECTION = "shapelens"


@dataclass(frozen=True)
class Settings:
    device: str = "meta"  # meta | cpu | cuda
    trace_timeout: float = 10.0  # seconds per traced model
    debounce_ms: int = 300  # quiet time after the last keystroke before a trace starts
    inlay_hints_enabled: bool = True
    layer_shapes: bool = True  # `[2, 1568] → [2, 10]` on layer constructors
    show_dtype: bool = True  # `int64[8, 20]` when a tensor is not float32
    trusted: bool = True  # False: static findings only, no user code runs, no worker is started
    interpreter: str = sys.executable  # the Python that runs the trace worker (it needs torch)

    def options(self) -> Options:
        # No FLOPs here: the flop counter sees every op (+25% on ResNet-50); the server counts them in a
        # follow-up trace for the layer hover, after the hints and diagnostics are out.
        return Options(device=self.device, timeout=self.trace_timeout, trusted=self.trusted)


# The client-facing key (relative to "shapelens.") of each field.
KEYS: dict[str, str] = {
    "device": "device",
    "traceTimeout": "trace_timeout",
    "debounceMs": "debounce_ms",
    "inlayHints.enabled": "inlay_hints_enabled",
    "inlayHints.layerShapes": "layer_shapes",
    "inlayHints.showDtype": "show_dtype",
    "trusted": "trusted",
    "interpreter": "interpreter",
}
_DEFAULTS = Settings()


def _flatten(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The documented keys of `raw`, dotted, and the unknown ones as they are (they are ignored).

    Nested groups are flattened only where they lead to a documented key (`{"inlayHints": {"enabled": x}}`),
    and the `shapelens` wrapper (`{"shapelens": {...}}`, `"shapelens.trusted"`) is taken off once, at the
    top: a workspace's `"shapelens.shapelens.trusted": true` is no setting of ours and cannot override one.
    """
    if set(raw) == {SECTION} and isinstance(raw[SECTION], Mapping):
        raw = raw[SECTION]
    out: dict[str, Any] = {}

    def walk(group: Mapping[str, Any], prefix: str) -> None:
        for key, value in group.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and any(k.startswith(name + ".") for k in KEYS):
                walk(value, name + ".")
            else:
                out[name] = value

    walk({k.removeprefix(SECTION + "."): v for k, v in raw.items()}, "")
    return out


def _trust(value: Any) -> bool:
    """Only an unambiguous yes trusts the workspace."""
    if value is True or value == "true":
        return True
    if value is False or value == "false":
        return False
    raise ValueError("expected true or false")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    # Some clients (and hand-written init options) send strings; accept the unambiguous ones only.
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("expected true or false")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _timeout(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError("expected a positive number of seconds")
    return number


def _debounce(value: Any) -> int:
    number = _number(value)
    if number < 0 or number > 60_000:
        raise ValueError("expected milliseconds between 0 and 60000")
    return round(number)


def _device(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in DEVICES:
        raise ValueError(f"expected one of {', '.join(DEVICES)}")
    return value.lower()


def _interpreter(value: Any) -> str:
    if value is None or value == "":
        return _DEFAULTS.interpreter  # an empty setting means "the server's own Python", not an error
    if not isinstance(value, str):
        raise ValueError("expected the path of a Python executable")
    path = os.path.expanduser(value)
    found = path if os.path.isfile(path) else shutil.which(path)
    if found is None or not os.access(found, os.X_OK):
        raise ValueError("no such executable")
    return os.path.abspath(found)


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "device": _device,
    "trace_timeout": _timeout,
    "debounce_ms": _debounce,
    "inlay_hints_enabled": _bool,
    "layer_shapes": _bool,
    "show_dtype": _bool,
    "trusted": _trust,
    "interpreter": _interpreter,
}
# A bad value falls back to the setting's default, except where the default would be the unsafe choice.
_BAD_VALUE = {"trusted": False}


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """`base` with the values present in `raw` applied; returns the settings and one warning per bad value.

    A key absent from `raw` keeps its value in `base` (so `workspace/configuration` overrides what
    `initializationOptions` set, key by key); a bad value falls back to the setting's default.
    """
    settings = base or Settings()
    if raw is None:
        return settings, []
    if not isinstance(raw, Mapping):
        return settings, [f"ignoring shapelens settings: expected an object, got {type(raw).__name__}"]
    flat = _flatten(raw)
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    for short, value in flat.items():
        name = KEYS.get(short)
        if name is None:
            continue  # settings of other sections or newer clients: not ours to judge
        if value is None and name != "trusted":
            changes[name] = getattr(_DEFAULTS, name)  # explicit null means "unset"
            continue
        try:
            changes[name] = _VALIDATORS[name](value)
        except ValueError as err:
            fallback = _BAD_VALUE.get(name, getattr(_DEFAULTS, name))
            kind = "the default" if name not in _BAD_VALUE else "the safe value"
            warnings.append(f"shapelens.{short}: bad value {value!r} ({err}); using {kind} {fallback!r}")
            changes[name] = fallback
    return replace(settings, **changes), warnings


def describe(settings: Settings) -> dict[str, Any]:
    """The settings under their client-facing names (for the log)."""
    by_field = {v: k for k, v in KEYS.items()}
    return {f"{SECTION}.{by_field[f.name]}": getattr(settings, f.name) for f in fields(settings)}
