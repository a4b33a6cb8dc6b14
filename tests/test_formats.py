"""`shapelens check --format json|github|sarif`, on the renderers directly (fast) and through the real CLI.

SARIF is validated against the official SARIF 2.1.0 JSON schema (`sarif-2.1.0-rtm.5.json`, vendored beside
this file from the npm package @microsoft/jest-sarif 1.0.0-beta.0, MIT; its `id` names the schemastore copy).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from shapelens.analysis.rules import RULES
from shapelens.cli.formats import json_document, render_github, render_text, sarif_document
from shapelens.cli.pool import Pool
from shapelens.core.findings import (
    Edit,
    FileReport,
    Finding,
    Fix,
    Hint,
    ModelInput,
    Related,
    Severity,
    Span,
    TracedModel,
)

REPO = Path(__file__).resolve().parents[1]
SARIF_SCHEMA = json.loads((Path(__file__).parent / "sarif-2.1.0-rtm.5.json").read_text(encoding="utf-8"))


def assert_valid_sarif(document: object) -> None:
    validator = jsonschema.Draft4Validator(SARIF_SCHEMA)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


def finding(path: Path, severity: Severity = Severity.ERROR, message: str = "boom", **kw: object) -> Finding:
    span = Span(str(path), 2, 5, 2, 9)
    return Finding("SL101", severity, span, message, **kw)  # type: ignore[arg-type]


# -- json ------------------------------------------------------------------------------------------------


def symbolic_report(path: str) -> FileReport:
    """A report with everything the JSON says: hints with and without a symbolic form (one that ran with two
    shapes, one with an unknown size), a finding with a fix, a model with named sizes and one without."""
    hints = [
        Hint(path, 12, 12, 30, "x", [(4, 6, 14, 14)], "float32", "meta", "Conv2d", None, [("B", 6, "H/2", "W/2")]),
        Hint(path, 13, 14, 9, "y", [(4, 16, 5, 5), (8, 16, 5, 5)], "float32", "meta", None, None,
             [("B", 16, "H/4 - 3", "W/4 - 3"), None]),
        Hint(path, 15, 15, 20, "ids", [(4, None)], "int64", "meta", None, "a mask's count", []),
    ]  # fmt: skip
    fix = Fix("Set in_features to 16 * 6 * 6", (Edit(Span(path, 8, 29, 8, 39), "16 * 6 * 6"),), True)
    findings = [Finding("SL101", Severity.ERROR, Span(path, 8, 29, 8, 39), "Linear receives [4, 576]", (fix,))]
    given = ModelInput("x", (4, 3, 32, 32), "float32", "the size fc1 accepts", ("B", 3, "H", "W"))
    models = [
        TracedModel("Net", 5, "inferred", [given], ["hidden=64 (a small one)"], {"B": 4, "H": 32, "W": 32},
                    "x: [B, 3, H, W] with H, W ≡ 0 mod 4"),
        TracedModel("Plain", 20, "directive", [ModelInput("h", None, None)]),
    ]  # fmt: skip
    return FileReport(path, hints, findings, models=models)


def test_json_version_1_is_the_output_before_symbolic_shapes() -> None:
    # tests/json_version_1.json is what `json_document` wrote for this report before version 2 existed
    expected = json.loads((Path(__file__).parent / "json_version_1.json").read_text(encoding="utf-8"))
    document = json_document([symbolic_report("model.py")], version=1)
    assert json.dumps(document, indent=1, ensure_ascii=False) == json.dumps(expected, indent=1, ensure_ascii=False)


def test_json_version_2_adds_the_symbolic_form_beside_each_shape() -> None:
    document = json_document([symbolic_report("model.py")])
    assert document["version"] == 2
    [entry] = document["files"]  # type: ignore[misc]
    hints = [(h["target"], h["shape"], h.get("symbolic")) for h in entry["hints"]]
    assert hints == [
        ("x", [4, 6, 14, 14], ["B", 6, "H/2", "W/2"]),
        ("y", [4, 16, 5, 5], ["B", 16, "H/4 - 3", "W/4 - 3"]),
        ("y", [8, 16, 5, 5], None),  # the second shape had no form: no key
        ("ids", [4, None], None),
    ]
    assert list(entry["hints"][0]) == ["line", "column", "end_line", "target", "shape", "symbolic", "dtype", "label"]
    net, plain = entry["models"]
    assert net["dims"] == {"B": 4, "H": 32, "W": 32} and net["accepts"] == "x: [B, 3, H, W] with H, W ≡ 0 mod 4"
    assert net["inputs"] == [
        {"name": "x", "shape": [4, 3, 32, 32], "symbolic": ["B", 3, "H", "W"], "dtype": "float32",
         "note": "the size fc1 accepts"},
    ]  # fmt: skip
    assert "dims" not in plain and "accepts" not in plain and "symbolic" not in plain["inputs"][0]
    # without the symbolic keys, version 2 is version 1
    version_1 = json_document([symbolic_report("model.py")], version=1)
    for hint in entry["hints"]:
        hint.pop("symbolic", None)
    for model in entry["models"]:
        model.pop("dims", None), model.pop("accepts", None)
        for given in model["inputs"]:
            given.pop("symbolic", None)
    assert document["files"] == version_1["files"]
    with pytest.raises(ValueError, match="version 3"):
        json_document([], version=3)


# -- github ----------------------------------------------------------------------------------------------


def test_github_annotation_names_the_place_rule_and_title(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.py"
    out = render_github([FileReport(str(path), findings=[finding(path)])])
    assert out == ("::error file=model.py,line=2,col=5,endLine=2,endColumn=9,title=SL101 linear-in-features::boom\n")


def test_github_escapes_data_and_properties(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "a,b:c%.py"
    out = render_github([FileReport(str(path), findings=[finding(path, message="100% wrong\r\nsee: a, b")])])
    assert out.startswith("::error file=a%2Cb%3Ac%25.py,line=2,")
    assert out.endswith("::100%25 wrong%0D%0Asee: a, b\n")  # `:` and `,` are only escaped in properties
    assert out.count("\n") == 1


@pytest.mark.parametrize(
    ("severity", "command"),
    [
        (Severity.ERROR, "error"),
        (Severity.WARNING, "warning"),
        (Severity.INFORMATION, "notice"),
        (Severity.HINT, "notice"),
    ],
)
def test_github_levels(tmp_path: Path, severity: Severity, command: str) -> None:
    path = tmp_path / "model.py"
    assert render_github([FileReport(str(path), findings=[finding(path, severity)])]).startswith(f"::{command} ")


def test_github_without_findings_prints_nothing(tmp_path: Path) -> None:
    assert render_github([FileReport(str(tmp_path / "model.py"))]) == ""


# -- sarif -----------------------------------------------------------------------------------------------


def test_sarif_driver_lists_every_rule_of_the_registry(tmp_path: Path) -> None:
    document = sarif_document([])
    assert_valid_sarif(document)
    [run] = document["runs"]  # type: ignore[index]
    driver = run["tool"]["driver"]
    assert driver["name"] == "shapelens" and driver["version"] and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == list(RULES)
    for entry, rule in zip(driver["rules"], RULES.values(), strict=True):
        assert entry["name"] == rule.name and entry["helpUri"] == rule.url
        assert entry["shortDescription"]["text"]
        level = {"error": "error", "warning": "warning"}.get(rule.severity.value, "note")
        assert entry["defaultConfiguration"]["level"] == level
    assert run["columnKind"] == "utf16CodeUnits" and run["results"] == []


def test_json_and_text_name_a_findings_related_places(tmp_path: Path) -> None:
    # a wrong constructor's SL101 is filed on the constructor; the line where a CPU run raises is its related place
    path = tmp_path / "model.py"
    related = Related(Span(str(path), 7, 9, 7, 20), "meets its input here")
    report = FileReport(str(path), findings=[finding(path, related=(related,))])
    [diagnostic] = json_document([report])["files"][0]["diagnostics"]  # type: ignore[index]
    [place] = diagnostic["related"]
    assert place["message"] == "meets its input here" and (place["line"], place["column"]) == (7, 9)
    assert place["path"] == str(path) and (place["end_line"], place["end_column"]) == (7, 20)
    [old] = json_document([report], version=1)["files"][0]["diagnostics"]  # type: ignore[index]
    assert "related" not in old  # version 1 stays what it was
    assert f"\n  {path}:7:9: meets its input here\n" in render_text([report])  # the text names it too


def test_sarif_result_with_location_related_and_fixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sub dir" / "model.py"
    path.parent.mkdir()
    path.write_text("import torch\nfc = nn.Linear(400, 10)\n", encoding="utf-8")
    fix = Fix("Set in_features to 576", (Edit(Span(str(path), 2, 16, 2, 19), "576"),), safe=True)
    related = Related(Span(str(path), 1, 1, 1, 13), "meets its input here")
    report = FileReport(str(path), findings=[finding(path, fixes=(fix,), related=(related,))])
    document = sarif_document([report])
    assert_valid_sarif(document)
    [result] = document["runs"][0]["results"]  # type: ignore[index]
    assert result["ruleId"] == "SL101" and result["level"] == "error" and result["message"] == {"text": "boom"}
    assert document["runs"][0]["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "SL101"  # type: ignore[index]
    [location] = result["locations"]
    artifact = {"uri": "sub%20dir/model.py", "uriBaseId": "%SRCROOT%"}
    assert location["physicalLocation"] == {
        "artifactLocation": artifact,
        "region": {"startLine": 2, "startColumn": 5, "endLine": 2, "endColumn": 9},
    }
    assert result["relatedLocations"][0]["message"] == {"text": "meets its input here"}
    [sarif_fix] = result["fixes"]
    [change] = sarif_fix["artifactChanges"]
    assert change["artifactLocation"] == artifact
    assert change["replacements"] == [
        {
            "deletedRegion": {"startLine": 2, "startColumn": 16, "endLine": 2, "endColumn": 19},
            "insertedContent": {"text": "576"},
        }
    ]
    root = document["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"]  # type: ignore[index]
    assert root == tmp_path.as_uri() + "/"


def test_sarif_columns_are_utf16_code_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.py"
    path.write_text('s = "😀é"; fc = nn.Linear(400, 10)\n', encoding="utf-8")
    # characters: `nn.Linear` starts at column 16; the emoji is two UTF-16 code units, `é` one
    span = Span(str(path), 1, 16, 1, 25)
    document = sarif_document([FileReport(str(path), findings=[Finding("SL101", Severity.ERROR, span, "x")])])
    region = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]  # type: ignore[index]
    assert (region["startColumn"], region["endColumn"]) == (17, 26)


def test_sarif_file_outside_the_current_folder_is_an_absolute_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    path = tmp_path / "elsewhere.py"
    document = sarif_document([FileReport(str(path), findings=[finding(path)])])
    assert_valid_sarif(document)
    artifact = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]  # type: ignore[index]
    assert artifact == {"uri": path.as_uri()}


# -- through the CLI -------------------------------------------------------------------------------------


def check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shapelens.cli", "check", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("formats")
    shutil.copytree(REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_pool_results_are_identical_to_a_serial_run(examples: Path) -> None:
    serial = check("examples", "--format", "json", "--jobs", "1", cwd=examples)
    pooled = check("examples", "--format", "json", "--jobs", "2", cwd=examples)
    assert serial.returncode == pooled.returncode == 1  # the examples show errors on purpose
    files = json.loads(serial.stdout)["files"]
    assert len(files) > 10 and any(f["hints"] for f in files) and any(f["diagnostics"] for f in files)
    assert pooled.stdout == serial.stdout


def test_cli_sarif_of_the_examples_validates(examples: Path) -> None:
    result = check("examples", "--format", "sarif", "--jobs", "2", cwd=examples)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert_valid_sarif(document)
    results = document["runs"][0]["results"]
    assert any(r["ruleId"] == "SL101" and r.get("fixes") for r in results)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert all(uri.startswith("examples/") for uri in uris)


def test_cli_github_format_and_exit_zero(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import torch\nx = (\n", encoding="utf-8")
    (tmp_path / "drop.py").write_text(DROPOUT_FIRST, encoding="utf-8")
    result = check(".", "--format", "github", "--no-trace", cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["::error", "::warning"]
    assert lines[0].startswith("::error file=broken.py,line=") and ",title=SL000 " in lines[0]
    assert lines[1].startswith("::warning file=drop.py,line=") and ",title=SL201 " in lines[1]
    assert result.returncode == 1
    zero = check(".", "--format", "github", "--no-trace", "--exit-zero", cwd=tmp_path)
    assert zero.returncode == 0 and zero.stdout == result.stdout
    assert check(".", "--no-trace", "--exit-zero", cwd=tmp_path).returncode == 0
    assert check("missing.py", "--exit-zero", cwd=tmp_path).returncode == 2  # a usage error is still one


DROPOUT_FIRST = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.1)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.drop(self.fc(x)))
"""


def test_pooled_workers_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    (worker, _) = Pool(jobs=2, threads=3).workers
    assert worker.env is not None
    assert worker.env["OMP_NUM_THREADS"] == "3" and worker.env["MKL_NUM_THREADS"] == "7"  # a user's setting wins


def test_cli_json_version(tmp_path: Path) -> None:
    (tmp_path / "drop.py").write_text(DROPOUT_FIRST, encoding="utf-8")
    default = check("drop.py", "--format", "json", "--no-trace", cwd=tmp_path)
    one = check("drop.py", "--format", "json", "--json-version", "1", "--no-trace", cwd=tmp_path)
    assert json.loads(default.stdout)["version"] == 2 and json.loads(one.stdout)["version"] == 1
    assert json.loads(default.stdout)["files"] == json.loads(one.stdout)["files"]  # nothing symbolic to add
    bad = check("drop.py", "--format", "json", "--json-version", "3", cwd=tmp_path)
    assert bad.returncode == 2 and "--json-version" in bad.stderr
    assert "--json-version" in check("--help", cwd=tmp_path).stdout


def test_jobs_must_be_positive(tmp_path: Path) -> None:
    bad = check("--jobs", "0", ".", cwd=tmp_path)
    assert bad.returncode == 2 and "at least 1" in bad.stderr


# -- pre-commit ------------------------------------------------------------------------------------------


def test_pre_commit_hook_runs_the_console_script() -> None:
    yaml = pytest.importorskip("yaml")
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    [hook] = [h for h in hooks if h["id"] == "shapelens"]
    assert hook["entry"] == "shapelens check"
    assert hook["language"] == "python" and hook["types"] == ["python"] and hook["require_serial"] is True
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert hook["entry"].split()[0] in scripts
    assert scripts["shapelens"] == "shapelens.cli:main"
