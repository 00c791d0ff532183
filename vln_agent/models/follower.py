"""EnvDrop's follower (Tan et al. 2019), the navigation agent CLIP-ViL trained on CLIP features.

- Instruction encoder: word embedding (256) -> bidirectional LSTM (256 per direction),
  dropout 0.5; the decoder starts from ``tanh(Linear(max-pool over the word contexts))``.
- Decoder, one step per action: the previous action's angle feature -> 64-d embedding;
  soft-dot attention over the 36 views ``[feature ; angle feature]`` queried by the previous
  hidden state; ``LSTMCell(64 + D + 128 -> 512)``; soft-dot attention over the words; the
  candidate logits are the bilinear scores of the attended state against each candidate's
  ``[feature ; angle feature]``. Candidate 0 is STOP, with an all-zero feature.
- Feature dropout (0.3-0.4) on the visual part of view and candidate features only, unless
  the caller already applied an environmental-dropout mask.
- A critic ``MLP(512 -> 512 -> 1)`` on the attended state for A2C.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from envs.constants import ANGLE_FEATURE_SIZE
from envs.tokenizer import Tokenizer
from vln_agent.models.attention import SoftDotAttention
from vln_agent.training.checkpoint import load_model


@dataclass(frozen=True)
class FollowerConfig:
    """Architecture of the follower (defaults: R2R-EnvDrop's)."""

    #: Size of the instruction vocabulary (the tokenizer's; 0 in a recipe: set from the data).
    vocab_size: int = field(default=0, metadata={"derived": True})
    #: Visual feature size D of one view (512 for CLIP ViT-B, 640 for RN50x4, ...).
    feature_size: int = field(default=0, metadata={"derived": True})
    #: Token id used for padding.
    padding_idx: int = field(default=0, metadata={"derived": True})
    #: Word embedding size.
    word_embedding_size: int = 256
    #: Decoder hidden size; the bidirectional encoder uses half of it per direction.
    hidden_size: int = 512
    #: Embedding size of the previous action's angle feature.
    action_embedding_size: int = 64
    #: Angle feature size (EnvDrop: 128).
    angle_feature_size: int = field(default=ANGLE_FEATURE_SIZE, metadata={"derived": True})
    #: Dropout on words, contexts and hidden states.
    dropout: float = 0.5
    #: Dropout on the visual channels of view and candidate features.
    feature_dropout: float = 0.4

    def to_dict(self) -> dict:
        return asdict(self)


class InstructionEncoder(nn.Module):
    """Words [B, L] -> contexts [B, L, H] and the decoder's initial state."""

    def __init__(self, config: FollowerConfig) -> None:
        super().__init__()
        half = config.hidden_size // 2
        self.embedding = nn.Embedding(
            config.vocab_size, config.word_embedding_size, padding_idx=config.padding_idx
        )
        self.lstm = nn.LSTM(config.word_embedding_size, half, batch_first=True, bidirectional=True)
        self.init_state = nn.Linear(config.hidden_size, config.hidden_size)
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns contexts [B, L, H], padding mask [B, L] (True = pad), h0 [B, H], c0 [B, H]."""
        embedded = self.drop(self.embedding(tokens))  # [B, L, E]
        packed = pack_padded_sequence(
            embedded, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False
        )
        output, _ = self.lstm(packed)
        contexts, _ = pad_packed_sequence(output, batch_first=True, total_length=tokens.shape[1])
        mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] >= lengths[:, None]
        pooled = contexts.masked_fill(mask[..., None], float("-inf")).max(dim=1).values  # [B, H]
        h0 = torch.tanh(self.init_state(pooled))
        return self.drop(contexts), mask, h0, torch.zeros_like(h0)


@dataclass
class DecoderState:
    """What the decoder carries from one action to the next."""

    hidden: torch.Tensor  # [B, H]
    cell: torch.Tensor  # [B, H]
    #: Angle feature of the previous action [B, 128] (zeros at the start).
    previous_angle: torch.Tensor


class Follower(nn.Module):
    """Instruction encoder + attentive LSTM decoder + critic."""

    def __init__(self, config: FollowerConfig) -> None:
        super().__init__()
        self.config = config
        visual = config.feature_size + config.angle_feature_size
        self.encoder = InstructionEncoder(config)
        self.action_embedding = nn.Sequential(
            nn.Linear(config.angle_feature_size, config.action_embedding_size), nn.Tanh()
        )
        self.cell = nn.LSTMCell(config.action_embedding_size + visual, config.hidden_size)
        self.view_attention = SoftDotAttention(config.hidden_size, visual)
        self.word_attention = SoftDotAttention(config.hidden_size, config.hidden_size)
        self.candidate_attention = SoftDotAttention(config.hidden_size, visual)
        self.critic = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, 1),
        )
        self.drop = nn.Dropout(config.dropout)
        self.feature_drop = nn.Dropout(config.feature_dropout)

    def encode(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """Encode instructions; returns contexts [B, L, H], their pad mask and the start state."""
        contexts, mask, h0, c0 = self.encoder(tokens, lengths)
        angle = torch.zeros(tokens.shape[0], self.config.angle_feature_size, device=tokens.device)
        return contexts, mask, DecoderState(h0, c0, angle)

    def drop_visual(self, features: torch.Tensor) -> torch.Tensor:
        """Feature dropout on the visual channels only (the angle channels are kept)."""
        angle = self.config.angle_feature_size
        return torch.cat([self.feature_drop(features[..., :-angle]), features[..., -angle:]], -1)

    def step(
        self,
        state: DecoderState,
        view_features: torch.Tensor,
        candidate_features: torch.Tensor,
        candidate_mask: torch.Tensor,
        contexts: torch.Tensor,
        context_mask: torch.Tensor,
        already_dropped: bool = False,
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One decoding step.

        Args:
            view_features: [B, 36, D + 128] the panorama with angle features.
            candidate_features: [B, C + 1, D + 128] with STOP (all zeros) at index 0.
            candidate_mask: [B, C + 1] True where the action is available.
            already_dropped: the caller applied an environmental-dropout mask.

        Returns logits [B, C + 1] (-inf where unavailable), the new state, and the
        attention-refined hidden state [B, H] (the critic's and speaker's input).
        """
        if not already_dropped:
            view_features = self.drop_visual(view_features)
            candidate_features = self.drop_visual(candidate_features)
        action = self.drop(self.action_embedding(state.previous_angle))  # [B, 64]
        seen, _, _ = self.view_attention(self.drop(state.hidden), view_features)  # [B, D + 128]
        hidden, cell = self.cell(torch.cat([action, seen], dim=1), (state.hidden, state.cell))
        _, tilde, _ = self.word_attention(self.drop(hidden), contexts, context_mask)  # [B, H]
        logits = self.candidate_attention.scores(
            self.drop(tilde), candidate_features, ~candidate_mask
        )
        return logits, DecoderState(hidden, cell, state.previous_angle), tilde

    def after_action(
        self, state: DecoderState, candidate_features: torch.Tensor, action: torch.Tensor
    ) -> DecoderState:
        """The state for the next step: remember the angle feature of the chosen action [B]."""
        rows = torch.arange(action.shape[0], device=action.device)
        angle = candidate_features[rows, action, -self.config.angle_feature_size :]  # [B, 128]
        return DecoderState(state.hidden, state.cell, angle)

    def value(self, tilde: torch.Tensor) -> torch.Tensor:
        """Critic's state value [B] from the attention-refined hidden state."""
        return self.critic(tilde).squeeze(1)


def load_follower(path: str | os.PathLike[str]) -> tuple[Follower, Tokenizer, dict[str, Any]]:
    """A trained follower (``kind: follower`` checkpoint), its tokenizer and the payload."""
    tokenizers: list[Tokenizer] = []

    def build(payload: dict[str, Any]) -> Follower:
        tokenizers.append(Tokenizer(payload["vocabulary"]))  # checked with the weights
        return Follower(FollowerConfig(**payload["model_config"]))

    model, payload = load_model(path, "follower", build)
    return model, tokenizers[0], payload
