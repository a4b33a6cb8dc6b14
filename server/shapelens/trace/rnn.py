"""A shape rule for RNN/LSTM/GRU on storage-less (meta or fake) tensors, packed sequences included.

The meta kernel unrolls the recurrence per time step (≈0.5 s at T=64); the output shapes follow from the
module's configuration alone, so on meta/fake tensors we return empty tensors of those shapes (≈0.1 ms).
Real-device traces and packed sequences still run the real forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import rnn as rnn_utils
from torch.nn.utils.rnn import PackedSequence

# each class's own forward (RNNBase.forward is only the unimplemented base), for what the rule cannot do
_REAL_FORWARD: dict[type, Any] = {cls: cls.forward for cls in (nn.RNN, nn.LSTM, nn.GRU)}


def _real_forward(module: nn.RNNBase, input: Any, hx: Any) -> Any:
    for cls, forward in _REAL_FORWARD.items():
        if isinstance(module, cls):
            return forward(module, input, hx)
    raise TypeError(f"not an RNN module: {type(module).__name__}")


def _storage_less(tensor: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return tensor.device.type == "meta" or isinstance(tensor, FakeTensor)


def _packed(self: nn.RNNBase, packed: PackedSequence) -> Any:
    """Packed input: the output keeps the packing (one row per real time step), h_n has one column per
    sequence — `sorted_indices` says how many there are without reading `batch_sizes`' values."""
    if packed.sorted_indices is None:
        return None
    batch = packed.sorted_indices.shape[0]
    directions = 2 if self.bidirectional else 1
    out_size = self.proj_size if getattr(self, "proj_size", 0) else self.hidden_size
    data = packed.data.new_empty((packed.data.shape[0], directions * out_size))
    output = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    h_n = packed.data.new_empty((directions * self.num_layers, batch, out_size))
    if isinstance(self, nn.LSTM):
        return output, (h_n, packed.data.new_empty((directions * self.num_layers, batch, self.hidden_size)))
    return output, h_n


def shape_rule_forward(self: nn.RNNBase, input: Any, hx: Any = None) -> Any:
    if isinstance(input, PackedSequence) and _storage_less(input.data):
        result = _packed(self, input)
        if result is not None:
            return result
    if not isinstance(input, torch.Tensor) or not _storage_less(input):
        return _real_forward(self, input, hx)  # a real-device trace
    batched = input.dim() == 3
    # torch's own checks, which read shapes only (features vs input_size, h0/c0 vs the batch): an LSTM built
    # without batch_first and fed [B, T, F] with h0 of [layers, B, hidden] fails there on CPU
    if batched and hx is not None:
        self.check_forward_args(input, hx, None)  # type: ignore[arg-type]
    elif batched:
        self.check_input(input, None)
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


_real_pad = rnn_utils.pad_packed_sequence


def pad_packed_sequence(
    sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0, total_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The padded length is the number of time steps, which `batch_sizes` holds one entry for: a shape,
    not a value, so a storage-less trace can know it."""
    data = sequence.data
    if not _storage_less(data) or sequence.sorted_indices is None:
        return _real_pad(sequence, batch_first, padding_value, total_length)  # type: ignore[no-any-return]
    steps = total_length if total_length is not None else sequence.batch_sizes.shape[0]
    batch = sequence.sorted_indices.shape[0]
    shape = (batch, steps) if batch_first else (steps, batch)
    lengths = torch.empty(batch, dtype=torch.int64, device=sequence.batch_sizes.device)
    return data.new_empty((*shape, *data.shape[1:])), lengths


def install() -> None:
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        cls.forward = shape_rule_forward  # type: ignore[method-assign,assignment]
    rnn_utils.pad_packed_sequence = pad_packed_sequence
