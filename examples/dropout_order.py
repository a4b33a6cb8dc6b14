"""Where dropout goes relative to its activation (seed: "apply dropout after the activation, not before").

The truth is more specific than the seed's rule:
- before GELU (or Tanh, Sigmoid, SiLU, ...) the order changes the result: a dropped pre-activation becomes
  GELU(0) and survivors are scaled before a non-linear function -> SL201 warning;
- before ReLU/LeakyReLU the outputs are identical (same mask, positive scaling commutes with ReLU), so it is
  a matter of convention -> SL201 information, never an error.
Dropout never changes a shape: every hint below keeps the shape of its input.

Expected: SL201 warning at `h = self.drop(h)` (GeluRegressor), SL201 warning at `F.gelu(self.drop(...))`
(GatedScorer), SL201 information at `nn.Dropout(0.5)` inside the Sequential (ReluClassifier).
"""

import torch
import torch.nn.functional as F
from torch import nn


# shapelens: x=(8, 32)
class GeluRegressor(nn.Module):
    def __init__(self, in_features: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.drop = nn.Dropout(0.2)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = self.drop(h)
        h = self.act(h)
        return self.fc2(h)


# shapelens: x=(8, 32)
class GatedScorer(nn.Module):
    def __init__(self, in_features: int = 32, hidden: int = 48) -> None:
        super().__init__()
        self.proj = nn.Linear(in_features, hidden)
        self.drop = nn.Dropout(0.1)
        self.score = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.drop(self.proj(x)))
        return torch.sigmoid(self.score(h))


# shapelens: x=(8, 32)
class ReluClassifier(nn.Module):
    def __init__(self, in_features: int = 32, hidden: int = 64, num_classes: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.Dropout(0.5),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return logits
