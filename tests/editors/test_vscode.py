"""Shapelens in real VS Code: code-server 4.139 (VS Code 1.139) with the built .vsix installed offline,
driven through Debian's Chromium by playwright, checked on the rendered page the way a user sees it.

One session walks the story of the test model (tests/editors/workspace/convnet.py): open it from the
Explorer, read the shape inlay hints, hover a variable, find SL101 and SL201 in the Problems panel, apply
the SL101 quick fix from the editor (Ctrl+.), and see SL101 go and the hints follow the fixed model. Every
expected number comes from running the model on CPU (editor_truth.py). A screenshot of each step is kept
under test-artifacts/vscode/. Another session shows the symbolic hints (#13) and the sizes the model accepts.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import venv
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import editor_tools as tools
import pytest
from editor_truth import MODEL_FILE, Expected

pytestmark = [pytest.mark.editor, pytest.mark.timeout(420)]

NBSP = "\u00a0"
# The first trace pays for starting the server and importing torch (3 s here, more on a cold CI disk).
FIRST_TRACE_S = 90.0
STEP_S = 45.0

USER_SETTINGS = {
    "chat.disableAIFeatures": True,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "workbench.enableExperiments": False,
    "telemetry.telemetryLevel": "off",
    "telemetry.feedback.enabled": False,
    "update.mode": "none",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "extensions.ignoreRecommendations": True,
    "git.enabled": False,
    "editor.minimap.enabled": False,
    "editor.inlayHints.enabled": "on",
    "editor.hover.delay": 150,
    "security.workspace.trust.enabled": False,
    "window.title": "${activeEditorShort}",
    # The stories compare every hint with the CPU run's numbers; the symbolic labels (#13, on by default) have
    # their own story (test_vscode_symbolic_hints_and_accepted_sizes).
    "shapelens.inlayHints.symbolic": "off",
}

# Hints of the visible editor lines: the gutter's line numbers give each rendered line its number (lines
# are absolutely positioned, in no particular DOM order); inlay hints are the `dyn-rule` injected spans.
READ_LINES = """() => {
  const editor = document.querySelector('.part.editor .monaco-editor');
  if (!editor) return [];
  const numbers = {};
  for (const row of editor.querySelectorAll('.margin-view-overlays > div')) {
    const n = row.querySelector('.line-numbers');
    if (n) numbers[Math.round(parseFloat(row.style.top))] = parseInt(n.textContent, 10);
  }
  const out = [];
  for (const line of editor.querySelectorAll('.view-lines .view-line')) {
    const leaves = Array.from(line.querySelectorAll('span')).filter(s => s.children.length === 0);
    const isHint = s => /dyn-rule/.test(s.className);
    out.push({
      line: numbers[Math.round(parseFloat(line.style.top))] ?? null,
      code: leaves.filter(s => !isHint(s)).map(s => s.textContent).join(''),
      hints: leaves.filter(isHint).map(s => s.textContent).filter(t => t.trim().length > 0),
    });
  }
  return out;
}"""


def shapelens_log(log_dir: Path) -> str:
    """The extension's output channel ("Shapelens": client lines and the server's stderr), as VS Code logs it."""
    logs = sorted(log_dir.rglob("Shapelens.log"))
    return "\n".join(p.read_text(errors="replace") for p in logs) or "(no Shapelens.log)"


def plain(text: str) -> str:
    return text.replace(NBSP, " ")


class Session:
    """The page, plus helpers that wait for what a user would wait for and keep a screenshot per step."""

    def __init__(self, page: Any, log_dir: Path, shots: Path, user_settings: Path | None = None) -> None:
        self.page = page
        self.log_dir = log_dir
        self.user_settings = user_settings
        self.shots = shots
        self.step = 0

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.shots / f"{self.step:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def lines(self) -> dict[int, dict[str, Any]]:
        rows = self.page.evaluate(READ_LINES)
        return {row["line"]: row for row in rows if row["line"] is not None}

    def hints(self) -> dict[int, str]:
        """line -> its hint labels joined by ' | ' (NBSP turned into spaces)."""
        return {n: " | ".join(plain(h) for h in row["hints"]) for n, row in self.lines().items() if row["hints"]}

    def wait_until(self, what: str, check: Callable[[], Any], timeout: float = STEP_S) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except Exception as err:  # the page is still rendering: try again
                last = err
            else:
                if last:
                    return last
            time.sleep(0.25)
        path = self.shot("timeout")
        pytest.fail(
            f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}; screenshot {path}; "
            f"Shapelens log:\n{self.shapelens_log()[-4000:]}",
            pytrace=False,
        )

    def shapelens_log(self) -> str:
        return shapelens_log(self.log_dir)

    def go_to(self, line: int, column: int) -> None:
        """Ctrl+G `line:column`, the way a user moves the cursor there."""
        self.page.locator(".part.editor .monaco-editor .view-lines").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Control+g")
        self.page.wait_for_selector(".quick-input-widget input", state="visible")
        self.page.keyboard.type(f"{line}:{column}")
        self.page.keyboard.press("Enter")
        self.page.wait_for_selector(".quick-input-widget", state="hidden")

    def panel_text(self, selector: str) -> str:
        return plain(self.page.locator(selector).first.inner_text())

    def run_command(self, title: str) -> None:
        """A command from the Command Palette, chosen by its title."""
        self.page.keyboard.press("Control+Shift+P")
        self.page.wait_for_selector(".quick-input-widget input", state="visible")
        self.page.keyboard.type(title)
        self.page.locator(".quick-input-list .monaco-list-row", has_text=title).first.click()

    def toasts(self) -> list[str]:
        return [plain(t) for t in self.page.locator(".notifications-toasts .notification-toast").all_inner_texts()]


@contextlib.contextmanager
def vscode_session(
    tmp_path: Path,
    package: Path,
    interpreter: Path,
    shots: Path,
    *,
    trust: bool = True,
    files: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
) -> Iterator[Session]:
    """code-server with the .vsix installed offline and `shapelens.interpreter` set, in Chromium.
    `trust=False`: workspace trust is on and the folder opens in Restricted Mode (no prompt). `files`: more
    files in the workspace (relative path -> text); `env`: more environment for code-server (and so for the
    extension host); `settings`: user settings over `USER_SETTINGS` (None: remove that setting)."""
    from playwright.sync_api import sync_playwright

    tools.require(tools.CHROMIUM, "Debian's chromium")
    if shots.exists():
        shutil.rmtree(shots)
    shots.mkdir(parents=True)
    home, user_data, extensions = tmp_path / "home", tmp_path / "user-data", tmp_path / "extensions"
    workspace = tmp_path / "workspace"
    shutil.copytree(tools.WORKSPACE, workspace)
    for name, text in (files or {}).items():
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text(text)
    process_env = {**tools.isolated_env(home), **(env or {})}
    (user_data / "User").mkdir(parents=True)
    user_settings: dict[str, object] = dict(USER_SETTINGS)
    if not trust:
        user_settings.update(
            {"security.workspace.trust.enabled": True, "security.workspace.trust.startupPrompt": "never"}
        )
    for key, value in (settings or {}).items():
        if value is None:
            user_settings.pop(key, None)
        else:
            user_settings[key] = value
    (user_data / "User" / "settings.json").write_text(json.dumps(user_settings, indent=2))
    # shapelens.interpreter is machine-overridable: in code-server (a remote window) it belongs in the
    # remote machine's settings, as it would over Remote-SSH.
    (user_data / "Machine").mkdir(parents=True)
    (user_data / "Machine" / "settings.json").write_text(
        json.dumps({"shapelens.interpreter": str(interpreter)}, indent=2)
    )
    installed = tools.install_extension(package, user_data, extensions, process_env)
    assert "successfully installed" in installed, installed
    assert any(p.name.startswith("shapelens.shapelens-") for p in extensions.iterdir()), installed

    try:
        with (
            tools.code_server(
                workspace, user_data, extensions, process_env, tmp_path / "code-server.log", trust=trust
            ) as server,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=str(tools.CHROMIUM), args=tools.CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 900})
                page.set_default_timeout(STEP_S * 1000)
                page.goto(server.url)
                yield Session(page, user_data / "logs", shots, user_data / "User" / "settings.json")
            finally:
                browser.close()
    finally:
        (shots / "shapelens.log").write_text(shapelens_log(user_data / "logs"))
        if (tmp_path / "code-server.log").exists():
            shutil.copy(tmp_path / "code-server.log", shots / "code-server.log")


@pytest.fixture
def vscode(tmp_path: Path, vsix_package: Path) -> Iterator[Session]:
    """A user's environment with torch and nothing else: the server's own dependencies come from the .vsix."""
    python = tools.torch_only_python(tmp_path / "user-env")
    with vscode_session(tmp_path, vsix_package, python, tools.ARTIFACTS / "vscode") as session:
        yield session


def test_vscode_hints_hover_problems_and_quick_fix(vscode: Session, truth: Expected) -> None:
    page = vscode.page
    before, after = truth.before, truth.after

    # 1. Open the model by clicking its Explorer row.
    page.get_by_role("treeitem", name=MODEL_FILE).click(timeout=FIRST_TRACE_S * 1000)
    page.wait_for_selector(".part.editor .monaco-editor .view-lines")
    vscode.shot("opened")

    # 2. The shape hints, as rendered: every line the CPU run reached, with the CPU run's numbers.
    def hints_like_cpu() -> dict[int, str] | None:
        shown = vscode.hints()
        wanted = before.names()
        return shown if all(shown.get(line) == text for line, text in wanted.items()) else None

    shown = vscode.wait_until(f"the hints {before.names()}", hints_like_cpu, FIRST_TRACE_S)
    raw = vscode.lines()
    flat_line = next(line for line, text in before.line_hints.items() if text == f"[2, {truth.flat_features}]")
    assert NBSP in "".join(raw[flat_line]["hints"]), "hint text is rendered with non-breaking spaces"
    status = vscode.wait_until(
        "the status item's last trace time",
        lambda: re.search(r"\d+ ms", plain(page.locator("[id$='shapelens.status']").first.inner_text())),
    )
    assert status, "the status bar item shows the last trace time"
    vscode.shot("hints")
    hints_before = shown

    # 3. Hover the variable `flat` (mouse over its characters): its shape per the CPU run.
    row = page.locator(".part.editor .view-lines .view-line", has_text="flat = torch.flatten").first
    leaf = row.locator("span > span").first
    box = leaf.bounding_box()
    text = plain(leaf.inner_text())
    assert box and "flat" in text, text
    char = box["width"] / len(text)
    column = text.index("flat") + 2
    page.mouse.move(box["x"] + char * column, box["y"] + box["height"] / 2)
    hover = vscode.wait_until(
        "a hover with the shape of `flat`",
        lambda: (t := vscode.panel_text(".monaco-hover-content")) and before.line_hints[flat_line] in t and t,
    )
    assert "flat" in hover
    vscode.shot("hover")
    page.mouse.move(5, 880)

    # 4. The Problems panel lists both findings, with their codes.
    page.keyboard.press("Control+Shift+M")
    problems = vscode.wait_until(
        "SL101 and SL201 in the Problems panel",
        lambda: (t := vscode.panel_text(".markers-panel")) and "SL101" in t and "SL201" in t and t,
    )
    assert f"receives [2, {truth.flat_features}]" in problems, problems
    assert f"[Ln {truth.fc1_line}," in problems and f"[Ln {truth.dropout_line}," in problems, problems
    assert "GELU" in problems
    vscode.shot("problems")

    # 5. The quick fix, from the editor: cursor on the hand-written size, Ctrl+., choose the SL101 fix.
    source_line = (tools.WORKSPACE / MODEL_FILE).read_text().splitlines()[truth.fc1_line - 1]
    vscode.go_to(truth.fc1_line, source_line.index(truth.wrong_expression) + 2)
    page.keyboard.press("Control+.")
    fix_title = f"Set in_features to {truth.fix_expression}"
    menu = page.locator(".action-widget .monaco-list-row", has_text=fix_title)
    vscode.wait_until(f"the quick fix '{fix_title}'", lambda: menu.count() > 0)
    vscode.shot("quick-fix-menu")
    menu.first.click()

    # 6. The fix is in the buffer, SL101 is gone (SL201 stays), and the hints follow the fixed model.
    vscode.wait_until(
        "the fixed line in the editor",
        lambda: f"nn.Linear({truth.fix_expression}, " in plain(vscode.lines()[truth.fc1_line]["code"]),
    )
    vscode.wait_until(
        "SL101 to leave the Problems panel",
        lambda: (t := vscode.panel_text(".markers-panel")) and "SL101" not in t and "SL201" in t,
    )
    page.keyboard.press("Control+s")
    page.keyboard.press("Control+j")  # hide the panel: the whole file is visible again
    page.keyboard.press("Control+Home")

    def hints_like_fixed_cpu() -> dict[int, str] | None:
        shown = vscode.hints()
        return shown if all(shown.get(line) == text for line, text in after.names().items()) else None

    hints_after = vscode.wait_until(f"the hints {after.names()}", hints_like_fixed_cpu)
    assert hints_after[truth.fc1_line] == after.layer_hints[truth.fc1_line]
    vscode.shot("fixed")

    # 7. A setting changed in the Settings editor goes to the running server (no restart): hints off, then on.
    def toggle_hints(enabled: bool) -> None:
        page.keyboard.press("Control+,")
        page.locator(".settings-editor .settings-header").first.wait_for(state="visible")
        page.keyboard.type("shapelens.inlayHints.enabled")  # the search box has the focus
        row = page.locator(".settings-editor .setting-item-bool", has_text="Show tensor shapes as inlay hints")
        checkbox = row.locator(".setting-value-checkbox").first
        checkbox.wait_for(state="visible")
        checkbox.click()
        assert vscode.user_settings is not None
        user_settings = vscode.user_settings
        vscode.wait_until(  # the Settings editor writes settings.json a moment later
            f"shapelens.inlayHints.enabled = {enabled} in the user settings",
            lambda: json.loads(user_settings.read_text()).get("shapelens.inlayHints.enabled", True) is enabled,
        )
        vscode.shot("settings")
        page.keyboard.press("Escape")
        page.get_by_role("tab", name=re.compile(MODEL_FILE)).first.click()

    toggle_hints(False)
    vscode.wait_until("the hints to go with shapelens.inlayHints.enabled = false", lambda: not vscode.hints())
    toggle_hints(True)
    vscode.wait_until("the hints to come back", hints_like_fixed_cpu)
    assert vscode.shapelens_log().count("Starting the server") == 1, "a live setting must not restart the server"
    print(f"fc1 hint before the fix: {hints_before.get(truth.fc1_line)!r}, after: {hints_after[truth.fc1_line]!r}")


def test_vscode_symbolic_hints_and_accepted_sizes(tmp_path: Path, vsix_package: Path, truth: Expected) -> None:
    """The default (`shapelens.inlayHints.symbolic` unset, so on): the hints name the sizes the model leaves
    free (`[B, 16·(H//4 - 3)·(W//4 - 3)]`), the hover on the class says which input sizes the model accepts
    and what each name was in the traced example, and each hint with those values is the CPU run's shape.
    Screenshots: test-artifacts/vscode-symbolic/."""
    from shapelens.core.symbolic import evaluate_shape, label_entries

    python = tools.torch_only_python(tmp_path / "user-env")
    shots = tools.ARTIFACTS / "vscode-symbolic"
    unset = {"shapelens.inlayHints.symbolic": None}
    with vscode_session(tmp_path, vsix_package, python, shots, settings=unset) as vscode:
        page = vscode.page
        before = truth.before
        page.get_by_role("treeitem", name=MODEL_FILE).click(timeout=FIRST_TRACE_S * 1000)
        page.wait_for_selector(".part.editor .monaco-editor .view-lines")

        def forward_hints() -> dict[int, str] | None:
            shown = vscode.hints()
            return shown if all(line in shown for line in before.line_hints) else None

        def symbolic_hints() -> dict[int, str] | None:
            try:
                shown = forward_hints()
            except Exception:  # the page is still rendering
                return None
            return shown if shown and any("B" in shown[line] for line in before.line_hints) else None

        vscode.wait_until("hints on the forward lines", forward_hints, FIRST_TRACE_S)
        # The symbolic pass follows the plain trace within a time cap (trace/symbolic.py): the first trace, on a
        # worker just started on a loaded machine, can run past it and keep the numbers. Trace again, as a user
        # would, until the named forms are there.
        shown = symbolic_hints()
        for _ in range(4):
            if shown:
                break
            vscode.run_command("Shapelens: Trace Current File Now")
            deadline = time.monotonic() + 30
            while not (shown := symbolic_hints()) and time.monotonic() < deadline:
                time.sleep(0.5)
        if not shown:
            path = vscode.shot("no-symbolic-hints")
            pytest.fail(f"no symbolic hint after 5 traces: {vscode.hints()}; screenshot {path}", pytrace=False)
        vscode.shot("symbolic-hints")
        for line, text in before.layer_hints.items():
            assert shown.get(line) == text, f"layer hint on line {line}: {shown.get(line)!r} != CPU {text!r}"

        # The hover on the class name: the accepted input sizes and each name's value in the traced example.
        row = page.locator(".part.editor .view-lines .view-line", has_text="class ConvNet").first
        name = row.locator("span > span", has_text="ConvNet").first
        box = name.bounding_box()
        assert box, "the class name is rendered"
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        hover = vscode.wait_until(
            "a hover with the sizes ConvNet accepts",
            lambda: (t := vscode.panel_text(".monaco-hover-content")) and "accepts" in t and t,
        )
        vscode.shot("accepted-sizes-hover")
        assert "x: [B, 3, H, W]" in hover, hover
        example = hover.split("in the traced example", 1)[1] if "in the traced example" in hover else ""
        values = {key: int(value) for key, value in re.findall(r"(\w+) = (\d+)", example)}
        assert values.get("B") == 2, hover

        # Each hint, with the example's values, is the CPU run's shape.
        for line, text in before.line_hints.items():
            cpu = tuple(int(d) for d in label_entries(text))
            assert evaluate_shape(label_entries(shown[line]), values) == cpu, (line, shown[line], values)
        page.mouse.move(5, 880)
        print(f"symbolic hints: { {line: shown[line] for line in before.line_hints} }; hover: {hover!r}")


def test_vscode_without_torch_says_so_once_and_keeps_static_checks(tmp_path: Path, vsix_package: Path) -> None:
    """An interpreter without torch: one message that says so and how to fix it, a warning in the status
    item, no crash and no pop-up storm; the static finding (SL201) still reaches the Problems panel."""
    bare = tmp_path / "bare-env"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(bare)
    with vscode_session(tmp_path, vsix_package, bare / "bin" / "python", tools.ARTIFACTS / "vscode-no-torch") as vscode:
        page = vscode.page
        page.get_by_role("treeitem", name=MODEL_FILE).click(timeout=FIRST_TRACE_S * 1000)
        toasts = page.locator(".notifications-toasts .notification-toast")
        vscode.wait_until(
            "the message that torch is missing",
            lambda: any("PyTorch is not importable" in plain(t) for t in toasts.all_inner_texts()),
            FIRST_TRACE_S,
        )
        status = page.locator("[id$='shapelens.status']").first
        vscode.wait_until("the status item's warning", lambda: status.locator(".codicon-warning").count() == 1)
        page.keyboard.press("Control+Shift+M")
        problems = vscode.wait_until(
            "SL201 (static) in the Problems panel",
            lambda: (t := vscode.panel_text(".markers-panel")) and "SL201" in t and t,
        )
        assert "SL101" not in problems, "SL101 needs a trace, which cannot run without torch"
        time.sleep(3)  # anything that would pile up (restarts, repeated messages) has had time to
        vscode.shot("no-torch")
        texts = [plain(t) for t in toasts.all_inner_texts()]
        assert sum("PyTorch is not importable" in t for t in texts) == 1, texts
        assert len(texts) == 1, f"one message, not a storm: {texts}"
        log = vscode.shapelens_log()
        assert "The server stopped" not in log and "restarting" not in log.lower(), log[-3000:]


def test_vscode_untrusted_workspace_runs_nothing_until_trusted(
    tmp_path: Path, vsix_package: Path, truth: Expected
) -> None:
    """Restricted Mode: the server starts with shapelens.trusted = false (static SL201 only, no trace, so no
    hints and no SL101); granting trust restarts it trusted and the hints and SL101 arrive."""
    python = tools.torch_only_python(tmp_path / "user-env")
    shots = tools.ARTIFACTS / "vscode-untrusted"
    with vscode_session(tmp_path, vsix_package, python, shots, trust=False) as vscode:
        page = vscode.page
        page.get_by_role("treeitem", name=MODEL_FILE).click(timeout=FIRST_TRACE_S * 1000)
        status = page.locator("[id$='shapelens.status']").first
        vscode.wait_until(
            "the status item's untrusted shield", lambda: status.locator(".codicon-shield").count() == 1, FIRST_TRACE_S
        )
        page.keyboard.press("Control+Shift+M")
        vscode.wait_until(
            "SL201 (static) in the Problems panel", lambda: "SL201" in vscode.panel_text(".markers-panel")
        )
        time.sleep(3)  # a trace, if one wrongly ran, would have shown its hints and SL101 by now
        assert "SL101" not in vscode.panel_text(".markers-panel")
        assert not vscode.hints(), f"no shapes without a trace: {vscode.hints()}"
        assert "shapelens.trusted': False" in vscode.shapelens_log()
        vscode.shot("restricted")

        # Grant trust the way a user does: Manage Workspace Trust, then Trust.
        page.keyboard.press("Control+Shift+P")
        page.keyboard.type("Manage Workspace Trust")
        page.locator(".quick-input-list .monaco-list-row", has_text="Manage Workspace Trust").first.click()
        trust_button = page.get_by_role("button", name=re.compile(r"^Trust$"))
        trust_button.first.click()
        vscode.shot("trust-granted")
        # The trust editor opens as a modal editor: close it with its X.
        page.locator(".monaco-modal-editor-block [aria-label^='Close']").first.click()
        page.wait_for_selector(".monaco-modal-editor-block", state="detached")
        page.keyboard.press("Control+j")  # hide the panel: every hinted line is visible
        shown = vscode.wait_until(
            f"the hints {truth.before.names()} once trusted",
            lambda: (h := vscode.hints()) and all(h.get(n) == t for n, t in truth.before.names().items()) and h,
            FIRST_TRACE_S,
        )
        assert shown
        vscode.wait_until("the status item's trace time", lambda: re.search(r"\d+ ms", status.inner_text()))
        page.keyboard.press("Control+Shift+M")
        vscode.wait_until("SL101 once trusted", lambda: "SL101" in vscode.panel_text(".markers-panel"))
        assert "workspace trusted" in vscode.shapelens_log()
        vscode.shot("trusted")


# Modules the server imports (argparse and tokenize from the standard library, difflib, jedi, its own
# package): a workspace file of the same name must never run inside it, trusted or not. Each one, if imported,
# leaves a marker file outside the workspace.
SHADOWED = ["argparse.py", "tokenize.py", "difflib.py", "jedi.py", "shapelens/__init__.py", "shapelens/cli.py"]


def shadowing_files(markers: Path) -> dict[str, str]:
    markers.mkdir()
    return {
        name: f"# Shadows the server's own module: it must never run.\n"
        f"open({str(markers / name.replace('/', '.'))!r}, 'w').close()\n"
        for name in SHADOWED
    }


def test_vscode_workspace_modules_never_shadow_the_server(tmp_path: Path, vsix_package: Path) -> None:
    """Restricted Mode, and the workspace holds argparse.py, tokenize.py, difflib.py, jedi.py and a shapelens/
    package. Python puts its working folder first on sys.path for `-m` and `-c`: the server (and the version
    probe before it) must start outside the workspace, with PYTHONSAFEPATH, so none of them runs. The server
    still comes up: the untrusted shield and the static SL201."""
    python = tools.torch_only_python(tmp_path / "user-env")
    markers = tmp_path / "markers"
    files = shadowing_files(markers)
    shots = tools.ARTIFACTS / "vscode-shadowing"
    with vscode_session(tmp_path, vsix_package, python, shots, trust=False, files=files) as vscode:
        page = vscode.page
        page.get_by_role("treeitem", name=MODEL_FILE).click(timeout=FIRST_TRACE_S * 1000)
        status = page.locator("[id$='shapelens.status']").first
        # Whichever comes first: a marker (a workspace module ran) or the server's untrusted shield.
        vscode.wait_until(
            "the status item's untrusted shield (or a marker of a workspace module that ran)",
            lambda: any(markers.iterdir()) or status.locator(".codicon-shield").count() == 1,
            FIRST_TRACE_S,
        )
        assert not sorted(p.name for p in markers.iterdir()), "workspace modules ran inside the server"
        page.keyboard.press("Control+Shift+M")
        vscode.wait_until(
            "SL201 (static) in the Problems panel", lambda: "SL201" in vscode.panel_text(".markers-panel")
        )
        time.sleep(2)  # whatever the server imports lazily (difflib for a fix, jedi for a hover) had its chance
        vscode.shot("shadowed-modules-ignored")
        assert not sorted(p.name for p in markers.iterdir()), "workspace modules ran inside the server"
        log = vscode.shapelens_log()
        assert "Server started" in log and "The server stopped" not in log, log[-3000:]


def test_vscode_restricted_mode_ignores_trusted_in_workspace_settings(tmp_path: Path, vsix_package: Path) -> None:
    """Restricted Mode with a workspace .vscode/settings.json that says `shapelens.trusted: true` and, nested,
    `shapelens.shapelens.trusted: true` (VS Code answers it as `{shapelens: {trusted: true}}` inside the
    section, and shapelens.trusted is the only key package.json restricts): still no trace, and the server is
    told the workspace is untrusted from its very start."""
    python = tools.torch_only_python(tmp_path / "user-env")
    workspace_settings = {"shapelens.trusted": True, "shapelens.shapelens.trusted": True}
    files = {".vscode/settings.json": json.dumps(workspace_settings, indent=2)}
    shots = tools.ARTIFACTS / "vscode-untrusted-settings"
    with vscode_session(tmp_path, vsix_package, python, shots, trust=False, files=files) as vscode:
        page = vscode.page
        page.get_by_role("treeitem", name=MODEL_FILE).click(timeout=FIRST_TRACE_S * 1000)
        status = page.locator("[id$='shapelens.status']").first

        def shield_or_trace() -> str | None:
            if vscode.hints() or re.search(r"\d+ ms", plain(status.inner_text())):
                return "traced"
            return "shield" if status.locator(".codicon-shield").count() == 1 else None

        outcome = vscode.wait_until("the untrusted shield (or a trace)", shield_or_trace, FIRST_TRACE_S)
        assert outcome == "shield", f"a trace ran in Restricted Mode: hints {vscode.hints()}"
        page.keyboard.press("Control+Shift+M")
        vscode.wait_until(
            "SL201 (static) in the Problems panel", lambda: "SL201" in vscode.panel_text(".markers-panel")
        )
        time.sleep(4)  # a trace, if one wrongly ran, would have shown its hints and SL101 by now
        vscode.shot("restricted-with-trusted-settings")
        assert "SL101" not in vscode.panel_text(".markers-panel")
        assert not vscode.hints(), f"no shapes without a trace: {vscode.hints()}"
        assert status.locator(".codicon-shield").count() == 1
        log = vscode.shapelens_log()
        assert '"workspaceTrusted":false' in log, log[-3000:]
        assert "shapelens.trusted': True" not in log, log[-3000:]


DEADLINE_S = 20


def pids_alive(pids: list[int]) -> list[int]:
    """The pids that still run (a zombie waiting for its parent to reap it counts as ended)."""
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            alive.append(pid)
    return alive


def test_vscode_server_that_never_answers_is_stopped_at_the_deadline(tmp_path: Path, vsix_package: Path) -> None:
    """shapelens.interpreter is a wrapper that answers the version probe like Python, then hangs on
    `-m shapelens.cli serve` (with a child of its own). Past the start-up deadline (shortened for the test by
    SHAPELENS_TEST_START_DEADLINE_MS) the status item turns to an error, one message says what happened, and
    the whole process tree is gone. A restart while the server still starts ends that process tree at once
    (as deactivation does)."""
    hang = tmp_path / "hang"
    hang.mkdir()
    pid_file = hang / "pids"
    fake = hang / "python"
    fake.write_text(
        "#!/bin/sh\n"
        "# Answers the version probe like Python; as the language server, hangs without a word.\n"
        f'if [ "$1" = "-c" ]; then exec {tools.VENV_BIN / "python"} "$@"; fi\n'
        f"echo $$ >> {pid_file}\n"
        "sleep 100000 &\n"
        f"echo $! >> {pid_file}\n"
        "wait\n"
    )
    fake.chmod(0o755)

    def pids() -> list[int]:
        return [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []

    env = {"SHAPELENS_TEST_START_DEADLINE_MS": str(DEADLINE_S * 1000)}
    shots = tools.ARTIFACTS / "vscode-start-deadline"
    with vscode_session(tmp_path, vsix_package, fake, shots, env=env) as vscode:
        page = vscode.page
        page.get_by_role("treeitem", name=MODEL_FILE).click(timeout=FIRST_TRACE_S * 1000)
        status = page.locator("[id$='shapelens.status']").first
        vscode.wait_until("the fake server to start (and hang)", lambda: len(pids()) >= 2)
        started = pids()[:2]
        assert pids_alive(started), "the fake server hangs until the deadline"
        message = f"did not start within {DEADLINE_S} s with {fake}"
        vscode.wait_until(
            f"the message '{message}'", lambda: any(message in t for t in vscode.toasts()), DEADLINE_S + 30
        )
        vscode.wait_until("the status item's error", lambda: status.locator(".codicon-warning").count() == 1)
        vscode.wait_until(f"the hung server {started} to be killed, child included", lambda: not pids_alive(started))
        time.sleep(3)  # anything that would pile up (restarts, repeated messages) has had time to
        vscode.shot("deadline")
        assert sum(message in t for t in vscode.toasts()) == 1, vscode.toasts()
        log = vscode.shapelens_log()
        assert "can't be stopped" not in log and "stopping server failed" not in log.lower(), log[-3000:]
        assert "restarting" not in log.lower(), log[-3000:]
        assert "no answer to initialize" in log, log[-3000:]
        assert len(pids()) == 2, f"given up on, not restarted: {pids()}"

        # Restart, and restart again while that server still starts: the hung start is given up on at once
        # (the same path as a deactivation while starting), not left to its deadline.
        vscode.run_command("Shapelens: Restart Server")
        vscode.wait_until("the restarted fake server", lambda: len(pids()) >= 4)
        spawned, restarted = time.monotonic(), pids()[2:4]
        assert pids_alive(restarted) == restarted
        vscode.run_command("Shapelens: Restart Server")
        vscode.wait_until(f"the starting server {restarted} to be killed", lambda: not pids_alive(restarted))
        assert time.monotonic() - spawned < DEADLINE_S - 5, "killed by the second restart, not by the deadline"
        vscode.wait_until("the third start", lambda: len(pids()) >= 6)
        vscode.wait_until("the log of the stop", lambda: "stopped while starting" in vscode.shapelens_log())
        vscode.shot("restarted-while-starting")
