"""A digit classifier for 28x28 grey images with its training loop under `if __name__ == "__main__":`.

The example call inside the `__main__` block (`net = DigitNet()`, `images = torch.randn(16, 1, 28, 28)`,
`logits = net(images)`) gives the input; the loop after it never runs under shapelens. Like
`train_at_import.py`, the loop writes a marker file so a test can prove it did not run. The flatten size is
right: 28 -> pool 14 -> pool 7, so `fc` gets 32 * 7 * 7.

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


class DigitNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.drop = nn.Dropout2d(0.1)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = self.drop(F.max_pool2d(F.relu(self.conv2(x)), 2))
        x = torch.flatten(x, 1)
        return self.fc(x)


if __name__ == "__main__":
    net = DigitNet()
    images = torch.randn(16, 1, 28, 28)
    logits = net(images)
    print(logits.shape)

    with open(MARKER, "a", encoding="utf-8") as handle:
        handle.write(f"training loop ran from {__file__}\n")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    for epoch in range(3):
        labels = torch.randint(0, 10, (16,))
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.3f}")
