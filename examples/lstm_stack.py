"""A keyword-spotting model with two stacked LSTMs over 40-band filterbank frames, where the second LSTM was
sized for the first one's hidden size (seed: "why does my LSTM's output not fit the next layer?").

The first LSTM is bidirectional, so its output holds both directions: [4, 50, 2 * 64] = [4, 50, 128]. The
second LSTM declares `input_size=64` and fails with "input.size(-1) must be equal to input_size".

Expected: SL104 (error) on the `hidden` passed as `input_size` to `self.decoder`, saying it receives 128.
"""

import torch
from torch import nn


# shapelens: x=(4, 50, 40)
class KeywordSpotter(nn.Module):
    def __init__(self, n_mels: int = 40, hidden: int = 64, num_keywords: int = 12) -> None:
        super().__init__()
        self.encoder = nn.LSTM(n_mels, hidden, batch_first=True, bidirectional=True)
        self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_keywords)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames, _ = self.encoder(x)
        frames, (h_n, _) = self.decoder(frames)
        return self.head(h_n[-1])
