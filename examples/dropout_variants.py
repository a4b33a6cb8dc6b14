"""Dropout variants used where they do not do what their name says (seed: "use Dropout2d for CNNs and
AlphaDropout for small values").

- `nn.Dropout2d` zeroes whole channels of an (N, C, H, W) tensor. `TabularNet` applies it to a [32, 128]
  tensor, which has no spatial dimensions -> SL203 warning.
- `nn.AlphaDropout` keeps the self-normalising property of SELU networks only. `ReluAlphaNet` puts it after a
  ReLU -> SL203 warning. `SeluNet` uses it as intended -> no finding.

Expected: SL203 (warning) on `self.drop = nn.Dropout2d(0.2)` and on `self.drop = nn.AlphaDropout(0.1)` in
`ReluAlphaNet`; nothing for `SeluNet`.
"""

import torch
from torch import nn


# shapelens: x=(32, 24)
class TabularNet(nn.Module):
    def __init__(self, in_features: int = 24, hidden: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.drop = nn.Dropout2d(0.2)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        h = self.drop(h)
        return self.fc2(h)


# shapelens: x=(32, 24)
class ReluAlphaNet(nn.Module):
    def __init__(self, in_features: int = 24, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.ReLU()
        self.drop = nn.AlphaDropout(0.1)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.act(self.fc1(x)))
        return self.fc2(h)


# shapelens: x=(32, 24)
class SeluNet(nn.Module):
    def __init__(self, in_features: int = 24, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.SELU(),
            nn.AlphaDropout(0.1),
            nn.Linear(hidden, hidden),
            nn.SELU(),
            nn.AlphaDropout(0.1),
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
