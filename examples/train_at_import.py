"""A churn-prediction MLP in a script that trains it at import time: the file ends with `train(model)`.

Shapelens finds the example call `logits = model(torch.randn(64, 20))` and runs only what it needs (the
constructor and the tensor factory), never `train(model)`: no training, no file written, nothing printed.
`train` writes a marker file (`$SHAPELENS_EXAMPLE_MARKER`, else `shapelens-example-trained.txt` in the temp
folder) so a test can prove it did not run.

Expected: no findings.
"""

import os
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

MARKER = os.environ.get(
    "SHAPELENS_EXAMPLE_MARKER", os.path.join(tempfile.gettempdir(), "shapelens-example-trained.txt")
)


class ChurnMLP(nn.Module):
    def __init__(self, num_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(num_features)
        self.hidden = nn.Linear(num_features, hidden)
        self.dropout = nn.Dropout(0.2)
        self.out = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        x = self.dropout(F.relu(self.hidden(x)))
        return self.out(x)


def train(model: nn.Module, steps: int = 200) -> None:
    """Fit on random data. Writes MARKER first: if this runs under shapelens, the test sees the file."""
    with open(MARKER, "a", encoding="utf-8") as handle:
        handle.write(f"train() ran from {__file__}\n")
    print("training ChurnMLP ...")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        x, y = torch.randn(64, 20), torch.randint(0, 2, (64,))
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


model = ChurnMLP(num_features=20)
logits = model(torch.randn(64, 20))
train(model)
