"""A small ResNet for 32x32 images whose residual blocks come from the sibling file `blocks.py`.

Imports of the project's own files work as when this file is run from its folder. The trace enters
`blocks.py`, so that file gets hints from this model too: `ResBlock.forward` runs three times here, at
[2, 16, 32, 32], [2, 32, 16, 16] and [2, 64, 8, 8].

Expected: no findings.
"""

import torch
from blocks import ResBlock
from torch import nn


# shapelens: x=(2, 3, 32, 32)
class SmallResNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.stage1 = ResBlock(16, 16)
        self.stage2 = ResBlock(16, 32, stride=2)
        self.stage3 = ResBlock(32, 64, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage3(self.stage2(self.stage1(x)))
        features = self.pool(x).flatten(1)
        return self.fc(features)
