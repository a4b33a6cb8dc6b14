"""A shape rule for RNN/LSTM/GRU on storage-less tensors.

The meta kernel unrolls the recurrence per time step (≈0.5 s at T=64); the output shapes follow from the
module's configuration alone, so on meta/fake tensors we return empty tensors of those shapes (≈0.1 ms).
Real-device traces and packed sequences still run the real forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_real_forward = nn.RNNBase.forward


def shape_rule_forward(self: nn.RNNBase, input: Any, hx: Any = None) -> Any:
    if not isinstance(input, torch.Tensor) or input.device.type != "meta":
        return _real_forward(self, input, hx)
    batched = input.dim() == 3
    if batched and self.batch_first:
        batch, steps = input.shape[0], input.shape[1]
    elif batched:
        steps, batch = input.shape[0], input.shape[1]
    else:
        steps, batch = input.shape[0], None
    directions = 2 if self.bidirectional else 1
    out_shape: tuple[Any, ...]
    state: tuple[Any, ...]
    out_size = self.proj_size if getattr(self, "proj_size", 0) else self.hidden_size
    if batched:
        out_shape = (batch, steps) if self.batch_first else (steps, batch)
        state = (directions * self.num_layers, batch)
    else:
        out_shape, state = (steps,), (directions * self.num_layers,)
    new = input.new_empty
    output = new((*out_shape, directions * out_size))
    h_n = new((*state, out_size))
    if isinstance(self, nn.LSTM):
        return output, (h_n, new((*state, self.hidden_size)))
    return output, h_n


def install() -> None:
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        cls.forward = shape_rule_forward  # type: ignore[method-assign,assignment]
