"""Shapelens editor test model: the conv stack flattens to 16 * 6 * 6 features, but `fc1` was sized by hand
for 16 * 5 * 5 (SL101), and the head drops out right before a GELU (SL201)."""

import torch
from torch import nn


# shapelens: x=(2, 3, 36, 36)
class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.head = nn.Sequential(
            nn.Dropout(0.3),
            nn.GELU(),
            nn.Linear(120, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        flat = torch.flatten(features, 1)
        hidden = self.fc1(flat)
        logits = self.head(hidden)
        return logits
