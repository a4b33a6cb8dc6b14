"""Bench model: GPT-2 small from `transformers` (`GPT2Config()` defaults: 12 layers, 768 wide, 124M
parameters), built from its config with no weights downloaded, wrapped in our own module."""

import torch
from torch import nn
from transformers import GPT2Config, GPT2Model


# shapelens: ids=int64(1, 128)
class GPT2Bench(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gpt2 = GPT2Model(GPT2Config())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.gpt2(input_ids=ids).last_hidden_state
        return hidden
