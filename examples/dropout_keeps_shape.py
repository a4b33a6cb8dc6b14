"""Dropout straight before a Linear layer is fine (seed: "a Dropout layer as input to a Linear layer causes a
TypeError because dropout changes the shape in training mode").

That claim is false: dropout zeroes elements and scales the survivors by 1 / (1 - p) at train time; it never
changes a shape, in train or eval mode. The hints show `x` keeping [8, 20] through `self.dropout`.

Expected: no findings.
"""

import torch
from torch import nn


# shapelens: init(input_size=20, hidden_size=64, output_size=5), x=(8, 20)
class DropoutFirstMLP(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int, p: float = 0.25) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p)
        self.hidden = nn.Linear(input_size, hidden_size)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        x = torch.relu(self.hidden(x))
        return self.out(x)
