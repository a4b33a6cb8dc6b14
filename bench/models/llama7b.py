"""Bench model: a 7B LLaMA configuration from `transformers` (32 layers, 4096 wide, 6.7B parameters), built
from its config with no weights. Its fp32 weights alone need about 27 GB, so it cannot run on real tensors
on a 24 GB machine; on the meta device it is only shapes."""

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM


# shapelens: ids=int64(1, 128)
class Llama7B(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        config = LlamaConfig(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            vocab_size=32000,
        )
        self.llama = LlamaForCausalLM(config)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = self.llama(input_ids=ids).logits
        return logits
