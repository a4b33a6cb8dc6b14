"""A LeNet-style classifier for 32x32 RGB images whose first Linear layer was sized by hand (seed: "mat1 and
mat2 shapes cannot be multiplied" after a Conv2d).

The author kept LeNet-5's `16 * 5 * 5`, which is right for 5x5 kernels. With 3x3 kernels the feature maps go
32 -> conv 30 -> pool 15 -> conv 13 -> pool 6, so `fc1` receives [4, 576] (16 * 6 * 6), not [4, 400].

Expected: SL101 (error) on the `16 * 5 * 5` argument, with a safe fix that writes `16 * 6 * 6`.
"""

import torch
import torch.nn.functional as F
from torch import nn


# shapelens: x=(4, 3, 32, 32)
class LeNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=3)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=3)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
