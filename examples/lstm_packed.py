"""A sentence encoder over a padded batch of variable-length sentences, using packed sequences so the LSTM
skips the padding (all correct).

`pack_padded_sequence` needs the real lengths, which are values, not shapes: the example call under
`if __name__ == "__main__":` gives them. Where a size depends on those values (the packed data's row count,
the padded length after unpacking) a trace that has no values shows it as unknown, never a guess. The
classifier reads the last states of both directions and the mean over the real time steps: 4 * hidden.

Expected: no findings.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class PackedEncoder(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden: int = 48, num_classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(4 * hidden, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        emb = self.embed(ids)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, (h_n, _) = self.lstm(packed)
        states, _ = pad_packed_sequence(packed_out, batch_first=True)
        mean = states.sum(dim=1) / lengths.unsqueeze(1).to(states.dtype)
        sentence = torch.cat([h_n[-2], h_n[-1], mean], dim=1)
        return self.classifier(sentence)


if __name__ == "__main__":
    encoder = PackedEncoder(vocab_size=500)
    ids = torch.randint(1, 500, (4, 12))
    lengths = torch.tensor([12, 9, 7, 3])
    logits = encoder(ids, lengths)
    print(logits.shape)
