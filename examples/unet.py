"""A small U-Net for binary segmentation with skip connections (all correct).

Each decoder stage upsamples with a transposed convolution and concatenates the encoder features of the same
resolution along the channel dimension (`torch.cat([up, skip], dim=1)`), so `dec2` sees 32 + 32 channels and
`dec1` 16 + 16. `DoubleConv.forward` runs five times and produces three distinct shapes: its hint lists
them all.

Expected: no findings.
"""

import torch
from torch import nn


# shapelens: init(1, 16), x=(2, 1, 32, 32)
class DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y


# shapelens: init(in_channels=1, num_classes=2), x=(2, 1, 32, 32)
class UNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, base: int = 16) -> None:
        super().__init__()
        self.enc1 = DoubleConv(in_channels, base)
        self.enc2 = DoubleConv(base, 2 * base)
        self.bottleneck = DoubleConv(2 * base, 4 * base)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * base, 2 * base, kernel_size=2, stride=2)
        self.dec2 = DoubleConv(4 * base, 2 * base)
        self.up1 = nn.ConvTranspose2d(2 * base, base, kernel_size=2, stride=2)
        self.dec1 = DoubleConv(2 * base, base)
        self.head = nn.Conv2d(base, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip1 = self.enc1(x)
        skip2 = self.enc2(self.pool(skip1))
        bottom = self.bottleneck(self.pool(skip2))
        up = self.up2(bottom)
        up = self.dec2(torch.cat([up, skip2], dim=1))
        up = self.up1(up)
        up = self.dec1(torch.cat([up, skip1], dim=1))
        return self.head(up)
