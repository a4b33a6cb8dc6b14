"""An ECG-beat classifier that tries to size its Linear layer at run time (seed: "set
`self.linear.in_features = x.shape[1]` in forward to adapt the layer automatically").

Assigning `in_features` only changes an attribute: the weight stays [5, 1], so the call still fails with
"mat1 and mat2 shapes cannot be multiplied (8x2784 and 1x5)". Size it in `__init__` (16 * 174) or use
`nn.LazyLinear(num_classes)`.

Expected: SL204 (warning) on the `self.classifier.in_features = ...` line and SL101 (error) on the `1`
passed as `in_features` to `nn.Linear`.
"""

import torch
from torch import nn


# shapelens: x=(8, 1, 180)
class BeatClassifier(nn.Module):
    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 16, kernel_size=7)
        self.act = nn.ReLU()
        self.classifier = nn.Linear(1, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(x))
        x = x.flatten(1)
        self.classifier.in_features = x.shape[1]
        return self.classifier(x)
