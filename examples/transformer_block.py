"""A pre-norm transformer block and a tiny encoder built from it (all correct).

The block: LayerNorm -> causal multi-head self-attention (`nn.MultiheadAttention`, batch_first) -> residual,
then LayerNorm -> MLP (Linear, GELU, then Dropout, Linear) -> residual. Dropout comes after the GELU, so no
SL201. The encoder adds token and position embeddings and runs the blocks in a loop: the loop body's hint
shows one shape, however many times it runs.

Expected: no findings.
"""

import torch
from torch import nn


# shapelens: init(d_model=64, n_heads=4), x=(2, 16, 64)
class TransformerBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * d_model, d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq_len = x.size(1)
        mask = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.ln1(x)
        attn_out, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + attn_out
        x = x + self.mlp(self.ln2(x))
        return x


# shapelens: init(vocab_size=1000), ids=int64(2, 16)
class TinyEncoder(nn.Module):
    def __init__(self, vocab_size: int, d_model: int = 64, n_heads: int = 4, depth: int = 2, max_len: int = 128):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.size(1), device=ids.device)
        x = self.tokens(ids) + self.positions(pos)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
