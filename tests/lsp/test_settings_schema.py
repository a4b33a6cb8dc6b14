"""The settings are declared once, in `shapelens.lsp.settings.Settings`: package.json's
`contributes.configuration` and the defaults client/src/settings.ts falls back to must say the same."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from shapelens.lsp.settings import SCHEMA, SECTION, Settings, configuration, parse_settings

ROOT = Path(__file__).resolve().parents[2]


def test_package_json_declares_exactly_the_settings() -> None:
    manifest = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    declared = manifest["contributes"]["configuration"]
    expected = configuration()
    assert sorted(declared["properties"]) == sorted(expected["properties"])
    for key, entry in expected["properties"].items():
        # type, default, enum (and the rest) one by one first, for a readable failure
        for attribute in ("type", "default", "enum", "minimum", "maximum", "scope"):
            assert declared["properties"][key].get(attribute) == entry.get(attribute), (key, attribute)
    assert declared == expected, "regenerate with: python -m shapelens.lsp.settings"


def _client_defaults() -> dict[str, Any]:
    source = (ROOT / "client" / "src" / "settings.ts").read_text(encoding="utf-8")
    found = re.findall(r'config\.get<[^>]+>\(\s*"([\w.]+)",\s*([^)]+?)\s*\)', source)
    return {key: json.loads(literal) for key, literal in found}


def test_the_client_falls_back_to_the_declared_defaults() -> None:
    defaults = _client_defaults()
    assert defaults == {s.key: s.manifest_default for s in SCHEMA}


def test_every_field_is_a_setting_and_its_default_is_valid() -> None:
    assert [s.field for s in SCHEMA] == list(Settings.__dataclass_fields__)
    assert len({s.key for s in SCHEMA}) == len(SCHEMA)
    for setting in SCHEMA:
        # The manifest's default, sent by a client, reads as the server's default.
        parsed, warnings = parse_settings({f"{SECTION}.{setting.key}": setting.manifest_default})
        assert not warnings and getattr(parsed, setting.field) == setting.default, setting.key
