"""Reusable building blocks, imported by `uses_blocks.py` (`from blocks import ResBlock`).

`ResBlock` is a basic ResNet block: two 3x3 convolutions with batch norm, and a 1x1 projection on the
shortcut when the stride or the channel count changes. Checked on its own it uses the directive below;
when `uses_blocks.py` is checked, the lines here get hints too, one per distinct shape.

Expected: no findings.
"""

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """A convolution without bias followed by batch norm ("same" padding for odd kernels)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    )


# shapelens: init(16, 16), x=(2, 16, 16, 16)
class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn(in_channels, out_channels, 3, stride)
        self.conv2 = conv_bn(out_channels, out_channels, 3)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv_bn(in_channels, out_channels, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = F.relu(self.conv1(x))
        out = self.conv2(out)
        out = F.relu(out + identity)
        return out
