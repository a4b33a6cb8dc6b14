"""The server's settings (`shapelens.*`): declared once, typed, with defaults, validated value by value.

`Settings` is the one declaration: each field carries its client key, default, validator and the JSON schema
the VS Code manifest shows (type, enum, minimum, scope, description). `SCHEMA` lists them; `configuration()`
is package.json's `contributes.configuration` (`python -m shapelens.lsp.settings` prints it), and
tests/lsp/test_settings_schema.py fails when package.json or client/src/settings.ts's defaults drift from it.

Settings arrive from `initializationOptions`, from `workspace/configuration` (section "shapelens") and from
`workspace/didChangeConfiguration` pushes, in whichever shape the client likes: nested
(`{"inlayHints": {"enabled": false}}`), dotted (`{"inlayHints.enabled": false}`), with or without one
`shapelens` wrapper; only the documented keys are read. A bad value never stops the server: it falls back to
that setting's default and the caller logs the warning we return, except `trusted`, where anything but an
unambiguous true (`0`, `"no"`, `"false "`, null) means untrusted.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from dataclasses import field as dataclass_field
from typing import Any

from shapelens.core.options import DEVICES, MAX_TIMEOUT_S, Options, timeout_problem

SECTION = "shapelens"
_UNSET: Any = object()

# -- validators: a value from the client -> the field's value, or ValueError -------------------------------


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
    problem = timeout_problem(number)
    if problem is not None:
        raise ValueError(problem)
    return number


def _debounce(value: Any) -> int:
    number = _number(value)
    if number < 0 or number > 60_000:
        raise ValueError("expected milliseconds between 0 and 60000")
    return round(number)


def _on_off(value: Any) -> str:
    if isinstance(value, bool):  # a hand-written `true`/`false` means what it says
        return "on" if value else "off"
    if not isinstance(value, str) or value.lower() not in ("on", "off"):
        raise ValueError("expected on or off")
    return value.lower()


def _device(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in DEVICES:
        raise ValueError(f"expected one of {', '.join(DEVICES)}")
    return value.lower()


def _interpreter(value: Any) -> str:
    if value is None or value == "":
        return sys.executable  # an empty setting means "the server's own Python", not an error
    if not isinstance(value, str):
        raise ValueError("expected the path of a Python executable")
    path = os.path.expanduser(value)
    found = path if os.path.isfile(path) else shutil.which(path)
    if found is None or not os.access(found, os.X_OK):
        raise ValueError("no such executable")
    return os.path.abspath(found)


# -- the declaration ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One `shapelens.*` setting: what the server reads and what the VS Code manifest declares."""

    key: str  # relative to "shapelens."
    field: str  # the `Settings` field
    default: Any  # the server's default
    validate: Callable[[Any], Any]
    json_type: str  # "string" | "number" | "boolean"
    description: str
    markdown: bool = False  # the description is Markdown (`markdownDescription`)
    enum: tuple[str, ...] | None = None
    enum_descriptions: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    scope: str = "resource"
    client_default: Any = _UNSET  # what the client says when unset, where it differs from `default`
    bad_value: Any = _UNSET  # what a bad value means, where the default would be the unsafe choice

    @property
    def manifest_default(self) -> Any:
        return self.default if self.client_default is _UNSET else self.client_default

    @property
    def fallback(self) -> Any:
        return self.default if self.bad_value is _UNSET else self.bad_value

    def manifest(self) -> dict[str, Any]:
        """This setting's entry in package.json's `contributes.configuration.properties`."""
        entry: dict[str, Any] = {"type": self.json_type}
        if self.enum is not None:
            entry["enum"] = list(self.enum)
        if self.enum_descriptions is not None:
            entry["enumDescriptions"] = list(self.enum_descriptions)
        entry["default"] = self.manifest_default
        if self.minimum is not None:
            entry["minimum"] = self.minimum
        if self.maximum is not None:
            entry["maximum"] = self.maximum
        entry["scope"] = self.scope
        entry["markdownDescription" if self.markdown else "description"] = self.description
        return entry


_JSON_TYPES = {"str": "string", "float": "number", "int": "number", "bool": "boolean"}


def _setting(key: str, default: Any, validate: Callable[[Any], Any], description: str, **schema: Any) -> Any:
    """A `Settings` field declared with its client key, validator and schema (read back by `SCHEMA`)."""
    return dataclass_field(default=default, metadata={SECTION: (key, validate, description, schema)})


@dataclass(frozen=True)
class Settings:
    # The order is package.json's.
    interpreter: str = _setting(
        "interpreter",
        sys.executable,  # the Python that runs the trace worker (it needs torch)
        _interpreter,
        "Python interpreter that runs the Shapelens server; it must have `torch` installed. Empty (the default): "
        "the active environment of the Python extension, else `python3` on the `PATH`. Changing it restarts "
        "the server.",
        markdown=True,
        scope="machine-overridable",
        client_default="",  # the client resolves "" itself and sends the server the executable it started
    )
    device: str = _setting(
        "device",
        "meta",
        _device,
        "Where the traced model's tensors live.",
        enum=DEVICES,
        enum_descriptions=(
            "Storage-less tensors: shapes without memory or compute (fast, works for huge models).",
            "Real tensors on the CPU: slower, but runs data-dependent code exactly.",
            "Real tensors on the GPU of the machine the server runs on.",
        ),
    )
    trace_timeout: float = _setting(
        "traceTimeout",
        10.0,
        _timeout,
        "Seconds one trace may run before it is stopped.",
        minimum=0.1,
        maximum=MAX_TIMEOUT_S,
    )
    debounce_ms: int = _setting(
        "debounceMs",
        300,
        _debounce,
        "Milliseconds to wait after the last edit before tracing the file again.",
        minimum=0,
    )
    inlay_hints_enabled: bool = _setting(
        "inlayHints.enabled",
        True,
        _bool,
        "Show tensor shapes as inlay hints at the end of the lines that bind tensors.",
    )
    layer_shapes: bool = _setting(
        "inlayHints.layerShapes",
        True,
        _bool,
        "Show what each layer received and returned (`[2, 1568] → [2, 10]`) next to its definition in `__init__`.",
        markdown=True,
    )
    show_dtype: bool = _setting(
        "inlayHints.showDtype",
        True,
        _bool,
        "Prefix a shape with its dtype when it is not `float32` (`int64[8, 20]`).",
        markdown=True,
    )
    symbolic: str = _setting(
        "inlayHints.symbolic",
        "on",
        _on_off,
        "Name the sizes a model leaves free (`[B, 6, H/2, W/2]`), where the trace could; off: the traced "
        "example's numbers (`[4, 6, 14, 14]`). The hover shows both.",
        markdown=True,
        enum=("on", "off"),
        enum_descriptions=(
            "Named sizes: the shape for every batch size and image size the model accepts.",
            "The sizes of the one example the model was traced with.",
        ),
    )
    trusted: bool = _setting(
        "trusted",
        True,  # False: static findings only, no user code runs, no worker is started
        _trust,
        "Run the models of the workspace to trace their shapes. Off: static checks only, no code from the "
        "workspace runs. Always off in an untrusted workspace.",
        markdown=True,
        bad_value=False,
    )

    def options(self) -> Options:
        # No FLOPs here: the flop counter sees every op (+25% on ResNet-50); the server counts them in a
        # follow-up trace for the layer hover, after the hints and diagnostics are out.
        return Options(device=self.device, timeout=self.trace_timeout, trusted=self.trusted)


def _schema() -> tuple[Setting, ...]:
    out = []
    for f in fields(Settings):
        key, validate, description, schema = f.metadata[SECTION]
        out.append(Setting(key, f.name, f.default, validate, _JSON_TYPES[str(f.type)], description, **schema))
    return tuple(out)


SCHEMA: tuple[Setting, ...] = _schema()
BY_KEY: dict[str, Setting] = {s.key: s for s in SCHEMA}


def configuration() -> dict[str, Any]:
    """package.json's `contributes.configuration`, from the declaration."""
    return {"title": "Shapelens", "properties": {f"{SECTION}.{s.key}": s.manifest() for s in SCHEMA}}


# -- reading what the client sends -------------------------------------------------------------------------


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
            if isinstance(value, Mapping) and any(k.startswith(name + ".") for k in BY_KEY):
                walk(value, name + ".")
            else:
                out[name] = value

    walk({k.removeprefix(SECTION + "."): v for k, v in raw.items()}, "")
    return out


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
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    for short, value in _flatten(raw).items():
        setting = BY_KEY.get(short)
        if setting is None:
            continue  # settings of other sections or newer clients: not ours to judge
        if value is None and setting.bad_value is _UNSET:
            changes[setting.field] = setting.default  # explicit null means "unset"
            continue
        try:
            changes[setting.field] = setting.validate(value)
        except ValueError as err:
            kind = "the default" if setting.bad_value is _UNSET else "the safe value"
            warnings.append(f"shapelens.{short}: bad value {value!r} ({err}); using {kind} {setting.fallback!r}")
            changes[setting.field] = setting.fallback
    return replace(settings, **changes), warnings


def describe(settings: Settings) -> dict[str, Any]:
    """The settings under their client-facing names (for the log)."""
    return {f"{SECTION}.{s.key}": getattr(settings, s.field) for s in SCHEMA}


if __name__ == "__main__":
    print(json.dumps(configuration(), indent=2, ensure_ascii=False))
