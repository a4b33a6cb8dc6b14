"""Two correct LSTM models over token ids (seed: "a Linear after an LSTM must get the last time step only").

- `PosTagger` applies its Linear to every time step of the LSTM output. The seed calls that an error; it is
  not: `nn.Linear` acts on the last dimension, so [4, 25, 128] -> [4, 25, num_tags] is exactly a tagger.
- `SentimentLSTM` classifies the whole sentence from the last layer's final hidden state `h_n[-1]`.

Each name of the tuple target `output, (h_n, c_n) = self.lstm(emb)` gets its own hint.

Expected: no findings.
"""

import torch
from torch import nn


# shapelens: init(vocab_size=5000, num_tags=17), ids=int64(4, 25)
class PosTagger(nn.Module):
    def __init__(self, vocab_size: int, num_tags: int, embed_dim: int = 48, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.2)
        self.tags = nn.Linear(2 * hidden, num_tags)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embed(ids)
        output, (h_n, c_n) = self.lstm(emb)  # noqa: RUF059 (each name gets a hint)
        output = self.dropout(output)
        scores = self.tags(output)
        return scores.log_softmax(dim=-1)


# shapelens: init(vocab_size=5000), ids=int64(4, 25)
class SentimentLSTM(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden: int = 48, num_layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=num_layers, batch_first=True, dropout=0.1)
        self.classifier = nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embed(ids)
        _, (h_n, _) = self.lstm(emb)
        last = h_n[-1]
        return self.classifier(last)
