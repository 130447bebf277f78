"""Recurrent sequence autoencoder: rnn-ae, for sequences (B, T, C).

Encoder: a GRU or LSTM reads the whole sequence; its last hidden state is mapped to the code
(the RNN encoder-decoder of Cho et al. 2014 and Srivastava et al. 2015's LSTM autoencoder).
Decoder: the code sets the initial hidden state, and the decoder RNN is fed the code again at
every time step (no teacher forcing), so a sequence can be decoded from z alone, which is what
the latent sliders and traversals need. A linear layer maps each step's hidden state to C values.
"""

from __future__ import annotations

import torch
from torch import nn

from app.core.config import ModelConfig
from app.core.models.base import Autoencoder

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentAutoencoder(Autoencoder):
    kind = "rnn-ae"

    def __init__(self, cfg: ModelConfig, input_shape: tuple[int, ...], loss: str):
        super().__init__(cfg, input_shape, loss)
        T, C = self.input_shape
        K, H = self.latent_dim, int(cfg.rnn_hidden)
        self.is_lstm = cfg.rnn_cell == "lstm"
        cell = CELLS[cfg.rnn_cell]
        self.encoder_rnn = cell(C, H, batch_first=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.to_code = nn.Linear(H, K)
        # An LSTM has two states (h, c) to initialise from the code.
        self.code_to_state = nn.Linear(K, 2 * H if self.is_lstm else H)
        self.decoder_rnn = cell(K, H, batch_first=True)
        self.to_output = nn.Linear(H, C)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        _, state = self.encoder_rnn(x)                               # x (B, T, C)
        last = state[0] if self.is_lstm else state                   # (1, B, H)
        return self.to_code(self.dropout(last[-1])), None            # (B, K)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        T = self.input_shape[0]
        state = torch.tanh(self.code_to_state(z)).unsqueeze(0)       # (1, B, H) or (1, B, 2H)
        if self.is_lstm:
            state = tuple(s.contiguous() for s in state.chunk(2, dim=-1))  # (h0, c0), each (1, B, H)
        steps = z.unsqueeze(1).expand(-1, T, -1)                     # (B, T, K): z at every step
        hidden, _ = self.decoder_rnn(steps, state)                   # (B, T, H)
        return self.to_output(self.dropout(hidden))                  # (B, T, C)
