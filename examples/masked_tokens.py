"""Mean-pooling only the real tokens of a padded batch with a boolean mask (a data-dependent shape).

`emb[mask]` keeps as many rows as there are non-padding tokens, which depends on the values in `ids`, not on
its shape. The meta device cannot know that count, so Shapelens falls back to `FakeTensorMode` and shows
that dimension as unknown (`?`) with the reason, never a guess; every other dimension stays exact.

Expected: no findings.
"""

import torch
from torch import nn


# shapelens: init(vocab_size=1000), ids=int64(4, 12)
class MaskedTokenPool(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 32, out_features: int = 8, pad_id: int = 0) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.proj = nn.Linear(dim, out_features)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embed(ids)
        mask = ids != self.pad_id
        lengths = mask.sum(dim=1)
        tokens = emb[mask]
        projected = torch.relu(self.proj(tokens))
        pooled = projected.mean(dim=0)
        return pooled * lengths.float().mean()
