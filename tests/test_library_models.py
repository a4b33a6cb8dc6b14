"""Library models (issue #9 item 6): transformers' GPT-2, LLaMA and BERT built from small configs in the
user's own file and as they sit in site-packages, a script that only uses a ready-made model, and timm /
torchvision where they install. Traced through the real worker; every shape is compared with a CPU run of
the same small model in this process, never typed by hand.
"""

from __future__ import annotations

import ast
import importlib.util
import textwrap
from pathlib import Path
from typing import Any

import pytest
from engine_support import Analyse
from shapelens.analysis.discover import find_models
from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.findings import FileReport
from shapelens.core.options import Options
from shapelens.core.source import Source, parse

pytestmark = pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers missing")

USER_FILES = {
    "gpt2": """
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=300))
        ids = torch.randint(0, 100, (2, 16))
        logits = model(input_ids=ids).logits
    """,
    "llama": """
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=500,
        )
        model = LlamaForCausalLM(config)
        ids = torch.randint(0, 100, (3, 12))
        logits = model(input_ids=ids).logits
    """,
    # OPT's positional embedding is an nn.Embedding with a forward of its own that takes the attention mask:
    # it was a false SL105 "received float32 values, not integer indices"
    "opt": """
        import torch
        from transformers import OPTConfig, OPTForCausalLM

        config = OPTConfig(
            num_hidden_layers=2, hidden_size=64, num_attention_heads=2, ffn_dim=128, word_embed_proj_dim=64,
            vocab_size=300,
        )
        model = OPTForCausalLM(config)
        ids = torch.randint(0, 100, (2, 16))
        logits = model(input_ids=ids).logits
    """,
    "bert": """
        import torch
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64))
        ids = torch.randint(0, 100, (2, 10))
        hidden = model(input_ids=ids).last_hidden_state
    """,
}


def cpu_shapes(source: str) -> dict[str, tuple[int, ...]]:
    """The tensors the file's top level binds, run for real on the CPU (its example call included)."""
    import torch
    from shapelens.trace import library

    library.install()  # torchvision beside the CPU torch, as in the trace child
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), "<cpu>", "exec"), namespace)
    return {k: tuple(v.shape) for k, v in namespace.items() if isinstance(v, torch.Tensor)}


def hints_by_target(report: FileReport) -> dict[str, tuple[int | None, ...]]:
    return {h.target: tuple(h.shape) for h in report.hints}


def errors(report: FileReport) -> list[str]:
    return [f"{f.code} {f.message}" for f in report.findings if f.severity.value == "error"]


@pytest.mark.parametrize("name", sorted(USER_FILES))
def test_library_model_in_the_users_file_traces_with_its_example_call(analyse: Analyse, name: str) -> None:
    source = USER_FILES[name]
    [report] = analyse(source, name=f"{name}_user.py").values()
    truth = cpu_shapes(source)
    hints = hints_by_target(report)
    assert errors(report) == []
    assert set(truth) <= set(hints), f"hints {hints}, CPU {truth}"
    for target, shape in truth.items():
        assert hints[target] == shape, target
    [model] = [m for m in report.models if m.name == "model"]
    assert str(model.input_source) == "example"


def test_script_that_only_uses_a_ready_made_model_gets_hints_on_its_lines(analyse: Analyse) -> None:
    """Before: "No findings." and nothing else — the file has no class, so nothing was discovered."""
    source = """
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2))
        ids = torch.randint(0, 100, (2, 16))
        out = model(input_ids=ids)
        logits = out.logits
    """
    [report] = analyse(source, name="script.py").values()
    truth = cpu_shapes(source)
    assert {(h.line, h.target, tuple(h.shape)) for h in report.hints} >= {
        (6, "ids", truth["ids"]),
        (8, "logits", truth["logits"]),
    }
    assert "model" in report.traced
    [model] = [m for m in report.models if m.name == "model"]
    assert [(i.name, list(i.shape or []), i.dtype) for i in model.inputs] == [("input_ids", [2, 16], "int64")]


@pytest.mark.parametrize(
    ("build", "vocab"),
    [
        ("GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2))", 50257),
        ("AutoModelForCausalLM.from_config(LlamaConfig(num_hidden_layers=2, hidden_size=64, vocab_size=300))", 300),
    ],
)
def test_ready_made_model_without_a_call_is_traced_with_token_ids(analyse: Analyse, build: str, vocab: int) -> None:
    """No example call: the child gives a transformers model the input its forward starts with (input_ids),
    below its vocabulary, and says it was a guess."""
    source = f"""
        from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig

        model = {build}
    """
    [report] = analyse(source, name="ready_made.py").values()
    assert report.findings == []
    [model] = [m for m in report.models if m.name == "model"]
    assert str(model.input_source) == "inferred"
    assert [(i.name, list(i.shape or []), i.dtype) for i in model.inputs] == [("input_ids", [2, 16], "int64")]
    assert f"vocab_size={vocab}" in (model.inputs[0].note or "")


def test_discovery_finds_ready_made_models_and_leaves_other_variables_alone(tmp_path: Path) -> None:
    text = textwrap.dedent("""
        import timm
        import torch
        from torch import nn
        from torchvision import models
        from transformers import AutoModelForCausalLM, AutoTokenizer, BertModel, GPT2Config, GPT2LMHeadModel

        gpt = GPT2LMHeadModel(GPT2Config(n_layer=2)).eval()
        bert = BertModel(config)
        auto = AutoModelForCausalLM.from_config(config)
        vision = models.resnet18()
        tm = timm.create_model("resnet18")
        encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2), 2)
        out = encoder(torch.randn(5, 2, 16))
        config = GPT2Config(n_layer=2)
        tokenizer = AutoTokenizer.from_pretrained("gpt2")
        criterion = nn.CrossEntropyLoss()
        loss = criterion(out, out)
        unused_layer = nn.Linear(3, 4)
        weights = models.get_model_weights("resnet18")
        pretrained = models.resnet50(weights=models.ResNet50_Weights.DEFAULT)
        pretrained_timm = timm.create_model("resnet18", pretrained=True)
        optimizer = torch.optim.Adam(gpt.parameters())

        if __name__ == "__main__":
            main_model = GPT2LMHeadModel(config)
    """)
    path = tmp_path / "script.py"
    path.write_text(text)
    parsed = parse(str(path), text)
    assert isinstance(parsed, Source)
    found = {m.name: m.kind for m in find_models(parsed, str(tmp_path))}
    assert found == dict.fromkeys(("gpt", "bert", "auto", "vision", "tm", "encoder", "main_model"), "sequential")


SITE_CLASSES = {
    "gpt2": ("GPT2LMHeadModel", "GPT2Model"),
    "llama": ("LlamaForCausalLM", "LlamaModel"),
    "bert": ("BertModel",),
}
OUTPUT = {"gpt2": "logits", "llama": "logits", "bert": "sequence_output"}  # the first class's output statement


def site_file(name: str) -> Path:
    spec = importlib.util.find_spec("transformers")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "models" / name / f"modeling_{name}.py"


def cpu_output_shape(class_name: str) -> tuple[int, ...]:
    """The model `library.build` makes, run on CPU with `library.library_inputs`: its first output."""
    import torch
    import transformers
    from shapelens.trace import library

    model = library.build(getattr(transformers, class_name))
    inputs = library.library_inputs(model, torch.device("cpu"))
    assert inputs is not None
    with torch.no_grad():
        out = model(**{name: value for name, value, _ in inputs})
    return tuple(out[0].shape)


@pytest.mark.parametrize("name", sorted(SITE_CLASSES))
def test_model_classes_in_site_packages_trace_from_a_small_config(worker: TraceWorker, name: str) -> None:
    """`shapelens check .../transformers/models/gpt2/modeling_gpt2.py`, zero edits: its model classes are built
    from their config made small (trace/library.py) and traced with token ids."""
    path = site_file(name)
    report = analyze(str(path), path.read_text(), Options(), worker)[str(path)]
    models = {m.name: m for m in report.models}
    for class_name in SITE_CLASSES[name]:
        model = models[class_name]
        assert [(i.name, list(i.shape or []), i.dtype) for i in model.inputs] == [("input_ids", [2, 16], "int64")]
        assert any("made small" in note for note in model.notes), model.notes  # what was made up is said
    assert errors(report) == []
    # the statement of the first class's forward that binds its output: the CPU run's output shape
    first = SITE_CLASSES[name][0]
    [cls] = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef) and n.name == first]
    inside = [h for h in report.hints if cls.lineno <= h.line <= (cls.end_lineno or 0) and h.target == OUTPUT[name]]
    assert inside, f"no hint for {OUTPUT[name]} in {first}"
    assert {tuple(h.shape) for h in inside} == {cpu_output_shape(first)}


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_timm_create_model_in_the_users_file(analyse: Analyse) -> None:
    source = """
        import timm
        import torch

        model = timm.create_model("resnet18", num_classes=10)
        x = torch.randn(2, 3, 64, 64)
        y = model(x)
    """
    [report] = analyse(source, name="timm_user.py").values()
    assert errors(report) == []
    assert hints_by_target(report).get("y") == cpu_shapes(source)["y"]


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed")
def test_torchvision_builders_in_the_users_file(analyse: Analyse) -> None:
    """PyPI's torchvision is a CUDA build: its compiled ops cannot load beside torch+cpu, and
    `library.install()` defines the two operators its import needs so that the pure-Python models load."""
    source = """
        import torch
        from torchvision.models import resnet18, vit_b_16

        cnn = resnet18(num_classes=10)
        vit = vit_b_16(image_size=32, num_classes=10)
        x = torch.randn(2, 3, 32, 32)
        a = cnn(x)
        b = vit(x)
    """
    [report] = analyse(source, name="vision_user.py").values()
    assert errors(report) == []
    truth = cpu_shapes(source)
    hints = hints_by_target(report)
    assert (hints.get("a"), hints.get("b")) == (truth["a"], truth["b"])


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed")
def test_torchvision_model_file_in_site_packages(worker: TraceWorker) -> None:
    """`torchvision/models/mobilenetv2.py` checked in place: MobileNetV2 is built with its defaults and traced
    with an inferred image batch; the shapes of its `_forward_impl` are those of a CPU run with that batch."""
    import torch
    from shapelens.trace import library

    library.install()
    from torchvision.models import mobilenetv2

    path = Path(mobilenetv2.__file__)
    report = analyze(str(path), path.read_text(), Options(), worker)[str(path)]
    assert errors(report) == []
    [model] = [m for m in report.models if m.name == "MobileNetV2"]
    [image] = model.inputs
    assert image.shape is not None and len(image.shape) == 4
    with torch.no_grad():
        x = torch.zeros([int(d or 0) for d in image.shape])
        net = mobilenetv2.MobileNetV2()
        features = net.features(x)
        truth = [tuple(features.shape), (features.shape[0], features.shape[1], 1, 1), (features.shape[0], 1280)]
        truth.append(tuple(net.classifier(torch.flatten(torch.zeros(truth[1]), 1)).shape))
    forward = next(n for n in ast.walk(ast.parse(path.read_text())) if getattr(n, "name", "") == "_forward_impl")
    inside = sorted(
        (h.line, tuple(h.shape))
        for h in report.hints
        if forward.lineno <= h.line <= (forward.end_lineno or 0) and h.target == "x"
    )
    assert [shape for _, shape in inside] == truth
