"""Human-activity recognition from 6-axis IMU windows (accelerometer + gyroscope, 128 samples each) with a
Conv1d stack, where the input size of the classifier was computed by hand (seed: "how do I compute
in_features for a Linear after a Conv1d?").

The hand formula accounts for the first pooling and the second convolution but forgets the second pooling:
it gives 64 * 60 = 3840, while the classifier receives [16, 1920] (64 channels * 30 steps).

Expected: SL101 (error) on the `64 * (window // 2 - kernel_size + 1)` argument of `nn.Linear`.
"""

import torch
import torch.nn.functional as F
from torch import nn


# shapelens: x=(16, 6, 128)
class ActivityCNN(nn.Module):
    def __init__(self, channels: int = 6, window: int = 128, kernel_size: int = 5, num_classes: int = 6) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, 32, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(32, 64, kernel_size)
        self.pool = nn.MaxPool1d(2)
        self.dropout = nn.Dropout(0.3)
        # length: window -> conv1 (same padding) -> pool /2 -> conv2 (-(k-1)) -> pool /2
        self.classifier = nn.Linear(64 * (window // 2 - kernel_size + 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        x = self.dropout(x)
        return self.classifier(x)
