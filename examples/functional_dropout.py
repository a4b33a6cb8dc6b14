"""A bag-of-embeddings text classifier that calls `F.dropout` without `training=self.training` (seed: "what
does dropout do in train vs eval mode?").

`nn.Dropout` follows `model.train()`/`model.eval()`; the functional form does not: its `training` argument
defaults to True, so the first call below keeps dropping 30% of the features after `model.eval()`. The second
call passes `training=self.training` and is correct.

Expected: SL202 (warning) at the first `F.dropout` line only, with a safe fix that adds
`training=self.training`.
"""

import torch
import torch.nn.functional as F
from torch import nn


# shapelens: init(vocab_size=2000), ids=int64(4, 24)
class BagOfEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 64, hidden: int = 32, num_classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.fc = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embed(ids)
        pooled = emb.mean(dim=1)
        pooled = F.dropout(pooled, p=0.3)
        hidden = F.relu(self.fc(pooled))
        hidden = F.dropout(hidden, p=0.3, training=self.training)
        return self.out(hidden)
