"""What the editor shows as text: inlay hint labels (`[8, 16, 14, 14]`, `[B, 16, H/2, W/2]` where the symbolic
pass named the free sizes, `[2, 1568] → [2, 10]`) and the Markdown of tooltips and hovers (a variable's shape
beside the traced example's numbers and its facts, a layer's calls, parameters, FLOPs and, for a dropout, what it
does in train and eval mode; a model's class: what it was traced with, where that came from, and the input sizes
it accepts)."""

from __future__ import annotations

from collections.abc import Sequence

from shapelens.core.findings import Hint, LayerInfo, Shape, SymShape, TracedModel, hint_label
from shapelens.core.torch_facts import DROPOUT_LAYERS

# -- labels ------------------------------------------------------------------------------------------------

MAX_SHAPES_IN_LABEL = 3


def symbolic_label(form: SymShape, dtype: str, show_dtype: bool = True) -> str:
    """`[B, 6, H/2, W/2]`: a symbolic form as the trace wrote it (#13), `int64[B, T]` when not float32."""
    prefix = dtype if show_dtype and dtype != "float32" else ""
    return f"{prefix}[{', '.join(str(d) for d in form)}]"


def shape_labels(hint: Hint, show_dtype: bool = True, symbolic: bool = True) -> list[str]:
    """Each distinct label of the hint's shapes, in order: the symbolic form where there is one (a block that ran
    at batch 4 and at batch 8 is `[B, 16]` once), else the numbers."""
    labels: list[str] = []
    for index, shape in enumerate(hint.shapes):
        form = hint.symbolic_of(index) if symbolic else None
        label = (
            hint_label(shape, hint.dtype, show_dtype) if form is None else symbolic_label(form, hint.dtype, show_dtype)
        )
        if label not in labels:
            labels.append(label)
    return labels


def shapes_label(hint: Hint, show_dtype: bool = True, symbolic: bool = True) -> str:
    """`[8, 16, 14, 14]` or `[B, 16, H/2, W/2]`; a line that ran with several shapes shows them all, up to three."""
    labels = shape_labels(hint, show_dtype, symbolic) or ["?"]
    if len(labels) > MAX_SHAPES_IN_LABEL:
        labels = [*labels[: MAX_SHAPES_IN_LABEL - 1], f"… +{len(labels) - MAX_SHAPES_IN_LABEL + 1}"]
    return " | ".join(labels)


def line_label(hints: Sequence[Hint], show_dtype: bool = True, symbolic: bool = True) -> str:
    """One statement's label: the bare shape, `name [..] · name2 [..]` when it binds several tensors, or
    `([..], [..])` when it returns a tuple of them."""
    if hints and all(h.target.startswith("return[") for h in hints):
        return _returned_tuple({h.target: shapes_label(h, show_dtype, symbolic) for h in hints})
    if len(hints) == 1:
        return shapes_label(hints[0], show_dtype, symbolic)
    return " · ".join(f"{h.target} {shapes_label(h, show_dtype, symbolic)}" for h in hints)


def _returned_tuple(labels: dict[str, str], prefix: str = "return") -> str:
    """`([B, 8], ([B, 4], [B, 4]))` for a returned tuple whose tensors were recorded as `return[0]`,
    `return[1][0]`, `return[1][1]`: the tuple as the code returns it (elements that are no tensor are left out)."""
    parts = []
    indices = sorted({int(t[len(prefix) + 1 :].split("]")[0]) for t in labels if t.startswith(prefix + "[")})
    for index in indices:
        element = f"{prefix}[{index}]"
        parts.append(labels.get(element) or _returned_tuple(labels, element))
    return "(" + ", ".join(parts) + ")"


def _shapes(shapes: Sequence[Shape]) -> str:
    labels = [hint_label(s, "float32") for s in shapes]
    return labels[0] if len(labels) == 1 else "(" + ", ".join(labels) + ")"


def call_signature(inputs: Sequence[Shape], outputs: Sequence[Shape]) -> str:
    """`[2, 1568] → [2, 10]` (several inputs or outputs in parentheses)."""
    return f"{_shapes(inputs) if inputs else '()'} → {_shapes(outputs) if outputs else '()'}"


def layer_signatures(layers: Sequence[LayerInfo]) -> list[str]:
    """Every distinct input → output seen by these layer instances, in the order first seen."""
    seen: list[str] = []
    for layer in layers:
        for call in layer.calls:
            signature = call_signature(call.inputs, call.outputs)
            if signature not in seen:
                seen.append(signature)
    return seen


def layer_label(layers: Sequence[LayerInfo]) -> str | None:
    signatures = layer_signatures(layers)
    if not signatures:
        return None
    return signatures[0] + (f" (+{len(signatures) - 1})" if len(signatures) > 1 else "")


# -- hover and tooltips ------------------------------------------------------------------------------------


def human_count(number: int) -> str:
    return f"{number:,}"


def human_bytes(number: int) -> str:
    size = float(number)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{number} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_flops(number: int) -> str:
    value = float(number)
    for unit in ("", "K", "M", "G", "T"):
        if value < 1000 or unit == "T":
            return f"{number} FLOPs" if unit == "" else f"{value:.1f} {unit}FLOPs"
        value /= 1000
    raise AssertionError("unreachable")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _code(text: str) -> str:
    return f"`{text}`"


def hint_details(hint: Hint) -> list[str]:
    """dtype, device, producer, every shape when the statement ran more than once, and why a dim is `?`."""
    facts = [f"dtype {_code(hint.dtype)}", f"device {_code(hint.device)}"]
    if hint.producer and " " in hint.producer:  # a sentence, not an op: "batch from the model's inferred input (…)"
        facts.append(hint.producer)
    elif hint.producer:
        facts.append(f"from {_code(hint.producer)}")
    lines = [" · ".join(facts)]
    if len(hint.shapes) > 1:
        calls = ", ".join(f"{_ordinal(i + 1)} {_code(hint_label(s, hint.dtype))}" for i, s in enumerate(hint.shapes))
        lines.append(f"ran with {len(hint.shapes)} shapes: {calls}")
    if hint.unknown:
        lines.append(f"`?`: {hint.unknown}")
    return lines


def _named_form(hint: Hint) -> SymShape | None:
    """The first shape's symbolic form where it names a size (a form of numbers only says nothing new)."""
    form = hint.symbolic_of(0) if hint.shapes else None
    return form if form is not None and any(isinstance(d, str) for d in form) else None


def _example(hint: Hint) -> str:
    """The shape a hover heads with: the symbolic form beside the example's numbers (`[B, 6, H/2, W/2]` · traced
    example `[4, 6, 14, 14]`), or the numbers alone where the symbolic pass named no size."""
    if not hint.shapes:
        return _code("?")
    shape = _code(hint_label(hint.shape, hint.dtype))
    form = _named_form(hint)
    if form is None:
        return shape
    return f"{_code(symbolic_label(form, hint.dtype))} · traced example {shape}"


def hints_tooltip(hints: Sequence[Hint]) -> str:
    parts = []
    for hint in hints:
        head = f"**{hint.target}** {_example(hint)}"
        parts.append("  \n".join([head, *hint_details(hint)]))
    return "\n\n".join(parts)


def variable_markdown(hint: Hint) -> str:
    """Hover on a variable: a Pylance-style signature line (the symbolic form where there is one), the example's
    numbers beside it, then the facts."""
    form = _named_form(hint)
    if form is not None:
        shape = symbolic_label(form, "float32")
    else:
        shape = hint_label(hint.shape, "float32") if hint.shapes else "?"
    returned = hint.target.split("[")[0] == "return"
    kind = "return" if returned else "tensor"
    name = hint.target.removeprefix("return") if returned else hint.target
    name = f"{name}: " if name else ""
    block = f"```python\n({kind}) {name}Tensor{shape}  # {hint.dtype}\n```"
    lines = [f"{_example(hint)}"] if form is not None else []
    return block + "\n" + "  \n".join([*lines, *hint_details(hint)])


def _dropout_markdown(layer: LayerInfo) -> list[str]:
    p = layer.extra.get("p")
    p_text = _code(f"p={p}") if p is not None else "probability `p`"
    scale = "1/(1-p)"
    if isinstance(p, int | float) and 0 <= p < 1:
        scale = f"1/(1-{p}) = {1 / (1 - p):.4g}"
    fact = DROPOUT_LAYERS[layer.type]
    what = "whole channel" if fact.channel_dims else "element"
    lines = [
        f"**train mode** (`model.train()`): zeroes each {what} with {p_text} and scales the survivors "
        f"by {scale}, so the expected value is unchanged",
        "**eval mode** (`model.eval()`): identity, nothing is dropped or scaled",
    ]
    if fact.alpha:
        lines[0] = (
            f"**train mode**: sets dropped values to SELU's negative saturation with {p_text} and rescales "
            "to keep mean and variance (for SELU networks)"
        )
    training = layer.extra.get("training")
    if training is not None:
        lines.append(f"this trace ran in **{'train' if training else 'eval'}** mode")
    lines.append("dropout never changes a shape")
    return lines


def display_name(qualified: str) -> str:
    """`features.3` -> `features[3]`: how the user would reach a Sequential entry in code."""
    out = ""
    for part in qualified.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "model"


def layer_markdown(layers: Sequence[LayerInfo], brief: bool = False) -> str:
    """Hover on a layer (attribute or constructor): input → output, parameters, FLOPs; dropout semantics.

    `layers` are the instances built from one constructor call (several when a block class is reused).
    """
    first = layers[0]
    owner = f"  # in {first.model}" if first.model else ""
    arguments = first.extra.get("repr")  # the module's own extra_repr, when the trace recorded it
    ctor = f"nn.{first.type}({arguments})" if isinstance(arguments, str) and arguments else f"nn.{first.type}"
    out = [f"```python\n(layer) {display_name(first.name)}: {ctor}{owner}\n```"]
    facts: list[str] = []
    signatures = layer_signatures(layers)
    if len(layers) == 1:
        facts += [_code(s) for s in signatures[:4]]
    else:
        for layer in layers[:6]:
            sigs = layer_signatures([layer])
            facts.append(
                f"{_code(display_name(layer.name))}: " + (", ".join(_code(s) for s in sigs) if sigs else "not called")
            )
        if len(layers) > 6:
            facts.append(f"… and {len(layers) - 6} more instances")
    if not signatures:
        facts.append("not called by the traced forward")
    params = f"params **{human_count(first.params)}** ({human_bytes(first.param_bytes)})"
    if first.flops is not None:
        params += f" · **{human_flops(first.flops)}** per forward"
    facts.append(params)
    if first.type in DROPOUT_LAYERS and not brief:
        facts += _dropout_markdown(first)
    out.append("  \n".join(facts))
    return "\n".join(out)


SOURCE_WORDS = {
    "directive": "your directive",
    "example": "the example call in the file",
    "workspace": "a call of it in the workspace",
    "inferred": "inferred",
}


def _note(note: str) -> str:
    """`hidden=64 (no value known: a small one)` → the value as code, the reason as words."""
    head, paren, rest = note.partition(" (")
    return f"{_code(head)}{paren}{rest}" if "=" in head and " " not in head else note


def model_markdown(model: TracedModel) -> str:
    """Hover on a model's class name: `traced with x: [2, 3, 32, 32] — the size fc1 accepts (inferred)`, then
    what was made up for its constructor, so a guess reads as a guess; where the symbolic pass ran (#13), the
    input sizes the model accepts (`x: [B, 3, H, W] with H, W ≡ 0 mod 4`) and the names' example values."""
    source = SOURCE_WORDS.get(model.input_source, model.input_source)
    lines = []
    for given in model.inputs:
        shape = hint_label(given.shape, given.dtype or "float32") if given.shape is not None else "(not a tensor)"
        why = f" — {given.note}" if given.note else ""
        lines.append(f"traced with {_code(f'{given.name}: {shape}')}{why} ({source})")
    if not lines:
        lines.append(f"traced ({source})")
    forms = [f"{g.name}: {symbolic_label(g.symbolic, g.dtype or 'float32')}" for g in model.inputs if g.symbolic]
    accepts = model.accepts or ", ".join(forms)
    if accepts:
        lines.append(f"**accepts** {_code(accepts)}")
    if model.dims:
        lines.append("in the traced example " + ", ".join(_code(f"{k} = {v}") for k, v in model.dims.items()))
    lines += [_note(note) for note in model.notes]
    return f"```python\n(model) {model.name}\n```\n" + "  \n".join(lines)
