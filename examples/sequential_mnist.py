"""Two MNIST classifiers written as module-level `nn.Sequential`s, each checked through its example call.

`broken` changed the first convolution from 16 to 8 filters but not the BatchNorm after it: the BatchNorm
receives [2, 8, 26, 26] and declares 16 features. The Linear at the end is right for 8 channels
(8 * 13 * 13), so only the BatchNorm is wrong: a fix must not touch the Linear. `fixed` is the same model,
correct.

Expected: SL103 (error) on the `16` of `nn.BatchNorm2d(16)` in `broken`; nothing else.
"""

import torch
from torch import nn

broken = nn.Sequential(
    nn.Conv2d(1, 8, kernel_size=3),
    nn.BatchNorm2d(16),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(8 * 13 * 13, 10),
)

fixed = nn.Sequential(
    nn.Conv2d(1, 8, kernel_size=3),
    nn.BatchNorm2d(8),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(8 * 13 * 13, 10),
)

digits = torch.randn(2, 1, 28, 28)
broken_logits = broken(digits)
fixed_logits = fixed(digits)
