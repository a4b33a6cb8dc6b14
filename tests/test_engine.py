"""The trace engine on models a user would write: per-line shapes against a real CPU run of the same model
(tests/oracle.py, independent of Shapelens), the layer mismatch findings and their fixes, how inputs are
found (directive, example call and its slice, first-layer inference) and where the trace has to stop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from engine_support import Analyse, write
from oracle import cpu_line_shapes, run_on_cpu, run_script_on_cpu
from shapelens.analysis import edits
from shapelens.core.findings import FileReport, Severity
from shapelens.trace import rnn
from torch import nn


def hints_by_key(reports: dict[str, FileReport]) -> dict[tuple[str, int, str], list[tuple[int | None, ...]]]:
    return {(h.path, h.line, h.target): list(h.shapes) for r in reports.values() for h in r.hints}


def codes(report: FileReport) -> list[tuple[str, int]]:
    return sorted((f.code, f.span.line) for f in report.findings)


def assert_matches_cpu(
    reports: dict[str, FileReport], oracle: dict[tuple[str, int, str], list[tuple[int, ...]]]
) -> None:
    """Every hint is what the CPU run bound there, and every tensor the CPU run bound has its hint."""
    ours = hints_by_key(reports)
    truth = {k: v for k, v in oracle.items() if not k[2].startswith("self.")}  # attribute targets: no hint
    assert ours, "the trace produced no hints"
    assert ours == {k: [tuple(s) for s in v] for k, v in truth.items()}


CONVNET = """
    import torch
    from torch import nn
    import torch.nn.functional as F

    WIDTH = 16


    # shapelens: x=(4, 3, 32, 32)
    class ConvNet(nn.Module):
        def __init__(self, classes: int = 10) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, WIDTH, 3, padding=1)
            self.conv2 = nn.Conv2d(WIDTH, 32, 3)
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Linear(32 * 7 * 7, classes)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            features, flat = x, x.flatten(1)
            logits = self.head(flat)
            logits += 1
            return logits
"""


def test_directive_shapes_match_a_real_cpu_run(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse(CONVNET, flops=True)
    path = str(tmp_path / "model.py")
    assert_matches_cpu(reports, cpu_line_shapes(path, "ConvNet", {"x": (4, 3, 32, 32)}))
    report = reports[path]
    assert not report.findings
    assert report.mode == "meta"
    conv1 = next(layer for layer in report.layers if layer.name == "conv1")
    assert conv1.calls[0].inputs == [(4, 3, 32, 32)] and conv1.calls[0].outputs == [(4, 16, 32, 32)]
    assert conv1.params == sum(p.numel() for p in nn.Conv2d(3, 16, 3).parameters())
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # the same layer on real CPU tensors
        nn.Conv2d(3, 16, 3, padding=1)(torch.randn(4, 3, 32, 32))
    assert conv1.flops == counter.get_total_flops()
    assert (conv1.span.line, conv1.span.column) == (13, 22)  # the constructor call `nn.Conv2d(...)`


def test_example_call_inside_a_function_runs_only_its_slice(analyse: Analyse, tmp_path: Path) -> None:
    marker = tmp_path / "trained.txt"
    source = f"""
        import torch
        from torch import nn

        HIDDEN = 24


        class Tagger(nn.Module):
            def __init__(self, vocab, tags):
                super().__init__()
                self.embed = nn.Embedding(vocab, HIDDEN)
                self.lstm = nn.LSTM(HIDDEN, 32, batch_first=True, bidirectional=True)
                self.out = nn.Linear(64, tags)

            def forward(self, ids):
                emb = self.embed(ids)
                output, (h_n, c_n) = self.lstm(emb)
                return self.out(output)


        def train(model):
            open({str(marker)!r}, "w").write("trained")


        def main(batch=3):
            model = Tagger(100, tags=7)
            ids = torch.randint(0, 100, (batch, 11))
            print("about to train")
            scores = model(ids)
            train(model)
            return scores


        train(Tagger(5, 2))
        if __name__ == "__main__":
            main()
    """
    reports = analyse(source)
    path = str(tmp_path / "model.py")
    assert not marker.exists(), "module-level train() ran"
    # the file's top level is traced as a script (#10): `main()` runs, its write refused; the truth is the same
    # script run on CPU without the write and the print
    lines = (tmp_path / "model.py").read_text().splitlines()
    harm = [n for n, text in enumerate(lines, start=1) if text.strip().startswith(("open(", "print("))]
    script, _ = run_script_on_cpu(path, skip_lines=harm)
    # main() is run statement by statement: the refused write in train() leaves out only itself, so `return scores`
    # has its shape as on CPU
    truth = script.shapes()
    forward = run_on_cpu(path, build="Tagger(100, tags=7)", inputs=[torch.randint(0, 100, (3, 11))]).shapes()
    assert truth == {**forward, **{k: v for k, v in truth.items() if k[2] in ("ids", "scores", "return")}}
    assert_matches_cpu(reports, truth)
    ours = hints_by_key(reports)
    assert ours[(path, 17, "h_n")] == [(2, 3, 32)]
    assert ours[(path, 16, "emb")] == [(3, 11, 24)]
    emb = next(h for h in reports[path].hints if h.target == "emb")
    assert emb.producer == "Embedding"


def test_lstm_shape_rule_matches_the_real_kernel() -> None:
    cases = [
        (nn.LSTM(8, 16, num_layers=2, bidirectional=True), (5, 3, 8)),
        (nn.LSTM(8, 16, batch_first=True, proj_size=4), (3, 5, 8)),
        (nn.GRU(8, 12, batch_first=True), (3, 5, 8)),
        (nn.RNN(8, 12), (5, 8)),  # unbatched
    ]
    for module, shape in cases:
        real_out = module(torch.randn(shape))
        meta_out = rnn.shape_rule_forward(module.to("meta"), torch.empty(shape, device="meta"))
        flat_real = [real_out[0], *(real_out[1] if isinstance(real_out[1], tuple) else [real_out[1]])]
        flat_meta = [meta_out[0], *(meta_out[1] if isinstance(meta_out[1], tuple) else [meta_out[1]])]
        assert [t.shape for t in flat_meta] == [t.shape for t in flat_real], module


def test_wrong_linear_after_conv_gets_a_fix_that_makes_the_model_run(analyse: Analyse, tmp_path: Path) -> None:
    source = CONVNET.replace("32 * 7 * 7", "32 * 6 * 6")
    reports = analyse(source)
    path = str(tmp_path / "model.py")
    report = reports[path]
    [finding] = report.findings
    assert finding.code == "SL101" and finding.severity == Severity.ERROR
    assert "receives [4, 1568]" in finding.message and "32 * 7 * 7" in finding.message
    assert finding.related and finding.related[0].span.line == 22  # `logits = self.head(flat)`
    head = next(layer for layer in report.layers if layer.name == "head")
    assert [(c.inputs, c.outputs) for c in head.calls] == [([(4, 1568)], [(4, 10)])]  # what it really met
    pool = next(layer for layer in report.layers if layer.name == "pool")
    assert [(c.line, c.inputs) for c in pool.calls] == [(19, [(4, 16, 32, 32)]), (20, [(4, 32, 14, 14)])]
    # the lenient trace goes on past the mismatch: later lines keep their shapes
    assert hints_by_key(reports)[(path, 24, "return")] == [(4, 10)]
    fix, lazy = finding.fixes
    assert fix.safe and fix.edits[0].new_text == "32 * 7 * 7"
    assert not lazy.safe and lazy.edits[0].new_text == "nn.LazyLinear(classes)"
    fixed, applied = edits.apply_edits(Path(path).read_text(), fix.edits)
    assert applied == 1
    Path(path).write_text(fixed)
    cpu_line_shapes(path, "ConvNet", {"x": (4, 3, 32, 32)})  # raises if the fixed model does not run


@pytest.mark.parametrize(
    ("layer", "code", "expected"),
    [
        ("nn.Conv2d(8, 4, 3)", "SL102", "3"),
        ("nn.BatchNorm2d(16)", "SL103", "3"),
        ("nn.LayerNorm(10)", "SL103", "32"),
    ],
)
def test_layer_size_mismatches(analyse: Analyse, tmp_path: Path, layer: str, code: str, expected: str) -> None:
    source = f"""
        import torch
        from torch import nn


        # shapelens: x=(2, 3, 32, 32)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = {layer}

            def forward(self, x):
                return self.layer(x)
    """
    report = analyse(source)[str(tmp_path / "model.py")]
    [finding] = report.findings
    assert finding.code == code and finding.span.line == 10
    assert finding.fixes[0].edits[0].new_text == expected


def test_lstm_fed_the_wrong_size_and_module_level_sequential(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn

        encoder = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 8))


        # shapelens: x=(4, 30, 40)
        class Stack(nn.Module):
            def __init__(self):
                super().__init__()
                self.first = nn.LSTM(40, 32, batch_first=True, bidirectional=True)
                self.second = nn.LSTM(32, 16, batch_first=True)

            def forward(self, x):
                out, _ = self.first(x)
                out, _ = self.second(out)
                return out[:, -1]
    """
    reports = analyse(source)
    path = str(tmp_path / "model.py")
    report = reports[path]
    assert codes(report) == [("SL104", 13)]
    assert report.findings[0].fixes[0].edits[0].new_text == "64"
    assert hints_by_key(reports)[(path, 18, "return")] == [(4, 16)]
    seq = [layer for layer in report.layers if layer.model == "encoder"]
    assert [layer.calls[0].outputs for layer in seq if layer.type == "Linear"] == [[(2, 64)], [(2, 8)]]


def test_shape_error_message_names_the_operands(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        # shapelens: a=(4, 8, 5), b=(4, 3, 6)
        class Join(nn.Module):
            def forward(self, a, b):
                a = a * 2
                c = torch.cat([a, b], dim=1)
                return c
    """
    reports = analyse(source)
    path = str(tmp_path / "model.py")
    [finding] = reports[path].findings
    assert (finding.code, finding.span.line) == ("SL001", 10)
    assert "a [4, 8, 5]" in finding.message and "b [4, 3, 6]" in finding.message
    assert hints_by_key(reports)[(path, 9, "a")] == [(4, 8, 5)]  # shapes up to the failing line stay
    with pytest.raises(RuntimeError):
        cpu_line_shapes(path, "Join", {"a": (4, 8, 5), "b": (4, 3, 6)})  # the CPU run fails there too


def test_a_model_without_input_gets_one_from_its_layers_and_blocks_used_by_a_traced_model_are_not_flagged(
    analyse: Analyse, tmp_path: Path
) -> None:
    source = """
        import torch
        from torch import nn


        class Block(nn.Module):
            def __init__(self, channels):
                super().__init__()
                self.conv = nn.Conv2d(channels, channels, 3, padding=1)

            def forward(self, x):
                return torch.relu(self.conv(x)) + x


        class Lonely(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)

            def forward(self, x):
                return self.conv(x)


        # shapelens: x=(2, 8, 16, 16)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.Sequential(Block(8), Block(8))

            def forward(self, x):
                return self.blocks(x)
    """
    report = analyse(source)[str(tmp_path / "model.py")]
    assert report.findings == []  # Lonely's input comes from its conv (#8); Block's shapes from Net's trace
    [lonely] = [h for h in report.hints if h.line == 21]
    assert lonely.shape[:2] == (2, 3)


def test_imported_block_and_base_class_from_another_file(analyse: Analyse, tmp_path: Path) -> None:
    write(tmp_path, "residual_blocks.py", """
        import torch
        from torch import nn

        print("blocks imported")  # a side effect at import: must not run


        class Base(nn.Module):
            pass


        class Residual(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fc = nn.Linear(width, width)

            def forward(self, x):
                y = self.fc(x)
                return x + y
    """)  # fmt: skip
    source = """
        import torch
        from residual_blocks import Base, Residual


        # shapelens: x=(5, 12)
        class Net(Base):
            def __init__(self):
                super().__init__()
                self.block = Residual(12)

            def forward(self, x):
                h = self.block(x)
                return h
    """
    reports = analyse(source)
    blocks = str(tmp_path / "residual_blocks.py")
    truth = cpu_line_shapes(str(tmp_path / "model.py"), "Net", {"x": (5, 12)})
    assert_matches_cpu(reports, truth)
    assert hints_by_key(reports)[(blocks, 18, "y")] == [(5, 12)]
    assert [layer.name for layer in reports[blocks].layers] == ["block.fc"]


def test_data_dependent_shapes_stay_unknown_with_the_reason(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        # shapelens: x=(4, 10)
        class Masked(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(10, 10)

            def forward(self, x):
                h = self.fc(x)
                kept = h[h > 0]
                idx = torch.LongTensor([0, 1])
                picked = h[idx]
                return picked
    """
    reports = analyse(source)
    path = str(tmp_path / "model.py")
    report = reports[path]
    assert report.mode == "fake"
    kept = next(h for h in report.hints if h.target == "kept")
    assert kept.shape == (None,) and kept.unknown
    assert hints_by_key(reports)[(path, 16, "picked")] == [(2, 10)]
    assert not report.findings


def test_value_needed_by_python_is_reported_not_guessed(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        # shapelens: x=(4, 10)
        class Counting(nn.Module):
            def forward(self, x):
                n = int((x > 0).sum().item())
                return x[:n]
    """
    report = analyse(source)[str(tmp_path / "model.py")]
    [finding] = report.findings
    assert finding.code == "SL004" and finding.span.line == 9
    assert "values" in finding.message and "--device cpu" in finding.message


def test_bad_directive_says_what_is_wrong(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        from torch import nn


        # shapelens: x=(8, three)
        class Net(nn.Module):
            def forward(self, x):
                return x
    """
    [finding] = analyse(source)[str(tmp_path / "model.py")].findings
    assert finding.code == "SL003" and "three" in finding.message


def test_cpu_device_gives_the_same_shapes_as_meta(analyse: Analyse, tmp_path: Path) -> None:
    meta = hints_by_key(analyse(CONVNET))
    cpu_reports = analyse(CONVNET, device="cpu")
    assert hints_by_key(cpu_reports) == meta
    assert next(iter(cpu_reports.values())).mode == "cpu"


def test_untrusted_runs_nothing(analyse: Analyse, tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    source = f"""
        from torch import nn
        open({str(marker)!r}, "w").write("ran")
        EXAMPLE = open({str(marker)!r}, "w")


        class Net(nn.Module):
            def forward(self, x):
                return x
    """
    report = analyse(source, trusted=False)[str(tmp_path / "model.py")]
    assert not marker.exists() and not report.hints


def test_instrumented_source_keeps_line_numbers() -> None:
    from shapelens.trace.instrument import instrument

    source = "def f(x):\n    y = x + 1\n    a, (b, c) = y, (y, y)\n    return y\n"
    tree, table = instrument(ast.parse(source), source)
    assert [(s.line, s.targets) for s in table] == [(2, ("y",)), (3, ("a", "b", "c")), (4, ("return",))]
    namespace: dict[str, object] = {"__shapelens_record__": lambda sid, values: None,
                                    "__shapelens_return__": lambda sid, value: value}  # fmt: skip
    exec(compile(tree, "<test>", "exec"), namespace)
    assert namespace["f"](1) == 2  # type: ignore[operator]


def test_multi_line_statement_is_one_hint_on_its_first_line(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        # shapelens: x=(2, 6)
        class Multi(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 4)

            def forward(self, x):
                y = self.fc(
                    x,
                )
                return y
    """
    reports = analyse(source)
    path = str(tmp_path / "model.py")
    assert_matches_cpu(reports, cpu_line_shapes(path, "Multi", {"x": (2, 6)}))
    y = next(h for h in reports[path].hints if h.target == "y")
    assert (y.line, y.end_line, y.end_column) == (13, 15, 10)  # the label goes after the closing paren


def test_example_built_by_a_factory_function(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        class Stage(nn.Sequential):
            def __init__(self, cin, cout):
                super().__init__(nn.Conv2d(cin, cout, 3, 2, 1), nn.ReLU())


        class Net(nn.Module):
            def __init__(self, classes):
                super().__init__()
                self.body = nn.Sequential(Stage(3, 8), Stage(8, 16))
                self.fc = nn.Linear(16, classes)

            def forward(self, img):
                x = self.body(img)
                pooled = x.mean((2, 3))
                return self.fc(pooled)


        def build():
            return Net(classes=4)


        net = build()
        scores = net(torch.rand(2, 3, 20, 12))
    """
    reports = analyse(source)
    path = str(tmp_path / "model.py")
    # the whole file run on CPU as a script: the forward's lines and `scores` at the top level (#10)
    assert_matches_cpu(reports, run_script_on_cpu(path)[0].shapes())
    assert not reports[path].findings  # Stage has no input of its own, but Net's trace used it


def test_non_ascii_source_keeps_character_columns(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        # shapelens: x=(2, 7)
        class Été(nn.Module):  # «été»
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 3)  # ← wrong: 7 features arrive

            def forward(self, x):
                y = self.fc(x)  # «y»
                return y
    """
    [finding] = analyse(source)[str(tmp_path / "model.py")].findings
    assert finding.code == "SL101"
    assert (finding.span.column, finding.span.end_column) == (29, 30)  # the `6`, in characters
    assert [f.edits[0].new_text for f in finding.fixes] == ["7", "nn.LazyLinear(3)"]


def test_packed_sequences_through_the_shape_rule(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


        # shapelens: x=(3, 7, 5), lengths=int64(3)
        class Packed(nn.Module):
            def __init__(self):
                super().__init__()
                self.gru = nn.GRU(5, 6, batch_first=True)

            def forward(self, x, lengths):
                packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
                out, h_n = self.gru(packed)
                padded, _ = pad_packed_sequence(out, batch_first=True)
                return h_n[-1]
    """
    reports = analyse(source)
    path = str(tmp_path / "model.py")
    report = reports[path]
    assert not report.findings
    truth = run_on_cpu(path, "Packed", {"x": (3, 7, 5), "lengths": torch.tensor([7, 4, 2])}).shapes()
    ours = hints_by_key(reports)
    assert ours[(path, 15, "h_n")] == [tuple(s) for s in truth[(path, 15, "h_n")]]
    assert ours[(path, 17, "return")] == [tuple(s) for s in truth[(path, 17, "return")]]
    padded = next(h for h in report.hints if h.target == "padded")
    assert padded.shape[0] == 3 and padded.shape[2] == 6 and padded.unknown  # the longest length is a value


def test_suppression_in_an_imported_file_counts(analyse: Analyse, tmp_path: Path) -> None:
    write(tmp_path, "heads.py", """
        from torch import nn


        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)  # shapelens: ignore[SL101]

            def forward(self, x):
                return self.fc(x)
    """)  # fmt: skip
    source = """
        from torch import nn
        from heads import Head


        # shapelens: x=(3, 5)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.head = Head()

            def forward(self, x):
                return self.head(x)
    """
    reports = analyse(source)
    assert not [f for r in reports.values() for f in r.findings]
    assert reports[str(tmp_path / "heads.py")].hints  # still traced, only the finding is silenced
