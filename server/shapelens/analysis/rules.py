"""The rule catalogue, as data: every finding Shapelens can report, with its code, name, default severity,
documentation and a bad/good example pair.

The checks themselves live in `static_rules.py` (no trace needed) and `trace_rules.py` (built from a trace
result); both look their rule up here, so a code, its name and its docs exist in one place only.
`docs/rules.md` is generated from this table (`python -m shapelens.analysis.rules > docs/rules.md`) and a
test keeps it in sync.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapelens.core.findings import Severity

RULES_URL = "https://github.com/shapelens/shapelens/blob/main/docs/rules.md"


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    bad: str
    good: str
    fix: str | None = None  # what the quick fix does, if there is one
    fix_safe: bool = False
    needs_trace: bool = True

    @property
    def url(self) -> str:
        return f"{RULES_URL}#{self.code.lower()}-{self.name}"


_RULES = [
    Rule(
        "SL000",
        "syntax-error",
        Severity.ERROR,
        "The file does not parse, so nothing in it can be traced. Earlier results are kept until it parses.",
        "x = self.fc(x\n",
        "x = self.fc(x)\n",
        needs_trace=False,
    ),
    Rule(
        "SL001",
        "shape-error",
        Severity.ERROR,
        "The traced forward raised a shape error at this line. The message names the operands and their "
        "shapes as they were at that line in the traced example.",
        "x = torch.cat([a, b], dim=1)  # a: [4, 8, 5], b: [4, 8, 6]\n",
        "x = torch.cat([a, b], dim=1)  # a: [4, 8, 5], b: [4, 3, 5]\n",
    ),
    Rule(
        "SL002",
        "trace-timeout",
        Severity.WARNING,
        "The trace did not finish within `shapelens.traceTimeout` seconds (default 10) and was stopped; the "
        "finding says at which line. Shapes up to that line are still shown. The same rule reports a "
        "recursion without end (a `forward` that calls itself, at the line that recursed) and a file whose "
        "top level did not finish loading in that time (`loading model.py did not finish in 10 s`, at the "
        "line of the file that was running: a slow import, a `time.sleep` the model's constructor needs).",
        "def forward(self, x):\n    while True:\n        x = self.step(x)\n",
        "def forward(self, x):\n    for _ in range(self.steps):\n        x = self.step(x)\n",
    ),
    Rule(
        "SL003",
        "no-input",
        Severity.INFORMATION,
        "No input is known for this model, so it was not traced. Add a directive such as "
        "`# shapelens: x=(8, 3, 32, 32)` above the class or its `forward`, or an example call in the file.",
        "class Net(nn.Module):\n    def forward(self, x): ...\n",
        "# shapelens: x=(8, 3, 32, 32)\nclass Net(nn.Module):\n    def forward(self, x): ...\n",
        needs_trace=False,
    ),
    Rule(
        "SL004",
        "trace-failed",
        Severity.WARNING,
        "The model could not be traced: building it failed, the trace process crashed, the code called "
        "`sys.exit()`, or it does something the trace cannot follow. The reason is in the message; the "
        "editor keeps working.",
        "model = Net(weights=torch.load('missing.pt'))\n",
        "model = Net()\n",
    ),
    Rule(
        "SL005",
        "trace-memory",
        Severity.WARNING,
        "The trace used more memory than its cap and was stopped (a real-device trace of a large model, "
        "usually). The finding says at which line.",
        "# shapelens: x=(100000, 100000)  with --device cpu\n",
        "# shapelens: x=(8, 1024)\n",
    ),
    Rule(
        "SL006",
        "file-too-large",
        Severity.INFORMATION,
        "The file is over the size Shapelens analyses (1,000,000 characters, or a line of over 20,000): "
        "nothing in it is checked or traced, so the editor stays responsive. Such files are data (a pasted "
        "tensor, a generated table) more often than models; move the data to its own file.",
        "WEIGHTS = [0.1, 0.2, ...]  # one line of 10 MB\n",
        "WEIGHTS = torch.load('weights.pt')\n",
        needs_trace=False,
    ),
    Rule(
        "SL007",
        "unreadable-file",
        Severity.ERROR,
        "`shapelens check` could not read this file (permission denied, a symbolic link loop, not UTF-8 "
        "text). The other files are still checked; like a syntax error, it fails the check.",
        "$ chmod 000 model.py && shapelens check .\n",
        "$ chmod 644 model.py && shapelens check .\n",
        needs_trace=False,
    ),
    Rule(
        "SL008",
        "no-forward",
        Severity.INFORMATION,
        "The module's class has no `forward` yet (a file in the middle of being written), so there is "
        "nothing to trace past the place it is called. Its layers are still shown; write `forward` and the "
        "shapes follow.",
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 2)\n",
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n",
    ),
    Rule(
        "SL101",
        "linear-in-features",
        Severity.ERROR,
        "`nn.Linear(in_features, ...)` does not match the last dimension of the tensor it receives. "
        "The fix writes the traced size (as the product that produced it, e.g. `16 * 6 * 6`), or "
        "swaps in `nn.LazyLinear(out_features)`, which infers it on the first call.",
        "self.fc = nn.Linear(16 * 5 * 5, 120)  # receives [4, 576]\n",
        "self.fc = nn.Linear(16 * 6 * 6, 120)\n",
        fix="Replace `in_features` with the traced size",
        fix_safe=True,
    ),
    Rule(
        "SL102",
        "conv-in-channels",
        Severity.ERROR,
        "`nn.Conv1d/2d/3d(in_channels, ...)` does not match the channel dimension (dim 1) of its input.",
        "self.conv2 = nn.Conv2d(32, 64, 3)  # receives [8, 16, 30, 30]\n",
        "self.conv2 = nn.Conv2d(16, 64, 3)\n",
        fix="Replace `in_channels` with the traced channel count",
        fix_safe=True,
    ),
    Rule(
        "SL103",
        "norm-features",
        Severity.ERROR,
        "`nn.BatchNorm*(num_features)` does not match the channel dimension of its input, or "
        "`nn.LayerNorm(normalized_shape)` does not match its trailing dimensions.",
        "self.bn = nn.BatchNorm2d(32)  # receives [8, 16, 30, 30]\n",
        "self.bn = nn.BatchNorm2d(16)\n",
        fix="Replace the size with the traced one",
        fix_safe=True,
    ),
    Rule(
        "SL104",
        "rnn-input-size",
        Severity.ERROR,
        "`nn.RNN/LSTM/GRU(input_size, ...)` does not match the feature dimension (the last) of its input. "
        "A common cause: feeding the whole `(output, (h_n, c_n))` tuple, or the wrong element of it.",
        "self.lstm2 = nn.LSTM(64, 32)  # receives [5, 20, 128] from a bidirectional LSTM\n",
        "self.lstm2 = nn.LSTM(128, 32)\n",
        fix="Replace `input_size` with the traced feature size",
        fix_safe=True,
    ),
    Rule(
        "SL105",
        "embedding-indices",
        Severity.ERROR,
        "`nn.Embedding` received a floating-point tensor; it needs integer (int64/int32) indices.",
        "emb = self.embed(torch.randn(2, 16))\n",
        "emb = self.embed(torch.randint(0, 1000, (2, 16)))\n",
    ),
    Rule(
        "SL201",
        "dropout-before-activation",
        Severity.WARNING,
        "Dropout is applied right before an activation. Before GELU, Tanh, Sigmoid, SiLU, ELU and the like "
        "this changes the result (dropped pre-activations become act(0), which is not 0 for all of them, and "
        "survivors are scaled before a non-linear function). Before ReLU, LeakyReLU, PReLU and RReLU the "
        "outputs are identical (act(0) = 0 and positive scaling commutes with act, so the same mask gives "
        "the same result), so it is reported as information only: a matter of convention, never an error. "
        "ReLU6 and Hardtanh are not in that group (their clamp does not commute with the 1/(1-p) scaling), "
        "and neither is any activation after AlphaDropout (it does not zero units). Found in "
        "`nn.Sequential(...)`, in consecutive statements (`x = self.drop(x)` then `x = self.act(x)`) and in "
        "nested calls (`F.gelu(F.dropout(x, ...))`). Dropout never changes a shape.",
        "nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.1), nn.GELU())\n",
        "nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Dropout(0.1))\n",
        fix="Swap the dropout and the activation",
        fix_safe=False,
        needs_trace=False,
    ),
    Rule(
        "SL202",
        "functional-dropout-training",
        Severity.WARNING,
        "`F.dropout(x, p)` in `forward` (or any method of a module) without `training=self.training` keeps "
        "dropping after `model.eval()`: the functional form defaults to `training=True`, unlike "
        "`nn.Dropout`. An explicit `training=True` is reported too (its fix is not marked safe: Monte Carlo "
        "dropout does that on purpose); a call under `if self.training:` is not.",
        "x = F.dropout(x, p=0.5)\n",
        "x = F.dropout(x, p=0.5, training=self.training)\n",
        fix="Pass `training=self.training`",
        fix_safe=True,
        needs_trace=False,
    ),
    Rule(
        "SL203",
        "dropout-variant-misuse",
        Severity.WARNING,
        "`nn.Dropout2d/3d` zeroes whole channels of a `(N, C, H, W)`/`(N, C, D, H, W)` tensor; on a tensor "
        "without those spatial dimensions it does not do what it says. `nn.AlphaDropout` keeps the "
        "self-normalising property of SELU networks only; without SELU use `nn.Dropout`.",
        "self.drop = nn.Dropout2d(0.2)  # receives [32, 128]\n"
        "self.alpha = nn.AlphaDropout(0.2)  # no SELU in the model\n",
        "self.drop = nn.Dropout(0.2)\nself.selu = nn.SELU()\nself.alpha = nn.AlphaDropout(0.2)  # in a SELU network\n",
        fix="Use `nn.Dropout`",
        fix_safe=False,
    ),
    Rule(
        "SL204",
        "runtime-layer-resize",
        Severity.WARNING,
        "Assigning `layer.in_features`/`out_features` (or `in_channels`, ...) after construction only "
        "changes an attribute: the weight keeps its shape, so the layer still expects the old size.",
        "self.fc.in_features = x.shape[1]\n",
        "self.fc = nn.LazyLinear(120)  # or compute the size once in __init__\n",
        needs_trace=False,
    ),
]

RULES: dict[str, Rule] = {r.code: r for r in _RULES}


def rule(code: str) -> Rule:
    return RULES[code]


def render_markdown() -> str:
    """The rules page (docs/rules.md): one anchor per rule, with a bad and a good example."""
    out = [
        "# Shapelens rules",
        "",
        "Generated from `server/shapelens/analysis/rules.py`; do not edit by hand.",
        "Suppress one on a line with `# shapelens: ignore[SL201]` (or `# shapelens: ignore` for all).",
        "",
        "| code | name | severity | needs a trace | fix |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in _RULES:
        fix = f"{r.fix} ({'safe' if r.fix_safe else 'unsafe'})" if r.fix else ""
        link = f"[{r.code}](#{r.code.lower()}-{r.name})"
        out.append(f"| {link} | {r.name} | {r.severity.value} | {'yes' if r.needs_trace else 'no'} | {fix} |")
    for r in _RULES:
        out += [
            "",
            f"## {r.code} {r.name}",
            "",
            r.summary,
            "",
            "Bad:",
            "```python",
            r.bad.rstrip("\n"),
            "```",
            "Good:",
            "```python",
            r.good.rstrip("\n"),
            "```",
        ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
