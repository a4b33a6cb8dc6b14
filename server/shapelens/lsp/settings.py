"""The server's settings (`shapelens.*`): typed, with defaults, validated value by value.

Settings arrive from `initializationOptions`, from `workspace/configuration` (section "shapelens") and from
`workspace/didChangeConfiguration` pushes, in whichever shape the client likes: nested
(`{"inlayHints": {"enabled": false}}`), dotted (`{"inlayHints.enabled": false}`), with or without the
`shapelens` prefix. A bad value never stops the server: it falls back to that setting's default and the
caller logs the warning we return.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from shapelens.analysis.check import DEVICES, Options

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


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        short = name.removeprefix(SECTION + ".")
        # Only our own nested groups are flattened: an unknown dict value stays a (bad) value.
        if isinstance(value, Mapping) and (name == SECTION or any(k.startswith(short + ".") for k in KEYS)):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


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
    "trusted": _bool,
    "interpreter": _interpreter,
}


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
    for key, value in flat.items():
        short = key[len(SECTION) + 1 :] if key.startswith(SECTION + ".") else key
        name = KEYS.get(short)
        if name is None:
            continue  # settings of other sections or newer clients: not ours to judge
        if value is None:
            changes[name] = getattr(_DEFAULTS, name)  # explicit null means "unset"
            continue
        try:
            changes[name] = _VALIDATORS[name](value)
        except ValueError as err:
            default = getattr(_DEFAULTS, name)
            warnings.append(f"shapelens.{short}: bad value {value!r} ({err}); using the default {default!r}")
            changes[name] = default
    return replace(settings, **changes), warnings


def describe(settings: Settings) -> dict[str, Any]:
    """The settings under their client-facing names (for the log)."""
    by_field = {v: k for k, v in KEYS.items()}
    return {f"{SECTION}.{by_field[f.name]}": getattr(settings, f.name) for f in fields(settings)}
