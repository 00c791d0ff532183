"""EnvDrop's speaker (Tan et al. 2019): a route of views -> an instruction.

- Encoder: the chosen action's ``[feature ; angle feature]`` at each step -> bidirectional
  LSTM; soft-dot attention from each step over that step's 36-view panorama; a second
  bidirectional LSTM over the attended steps gives the route contexts [B, T, H].
- Decoder: word embedding -> LSTM (from a zero state) -> soft-dot attention over the route
  contexts -> projection to the vocabulary. Trained with teacher forcing (cross entropy);
  decodes greedily or by sampling for back-translation.
Feature dropout applies to the visual channels only, unless the caller already applied an
environmental-dropout mask (the mask shared with the follower in back-translation).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from envs.constants import ANGLE_FEATURE_SIZE
from envs.tokenizer import Tokenizer
from vln_agent.models.attention import SoftDotAttention
from vln_agent.training.checkpoint import load_model


@dataclass(frozen=True)
class SpeakerConfig:
    """Architecture of the speaker (defaults: R2R-EnvDrop's)."""

    #: Size of the instruction vocabulary (the tokenizer's; 0 in a recipe: set from the data).
    vocab_size: int = field(default=0, metadata={"derived": True})
    #: Visual feature size D of one view.
    feature_size: int = field(default=0, metadata={"derived": True})
    #: Special token ids of the tokenizer.
    padding_idx: int = field(default=0, metadata={"derived": True})
    bos_idx: int = field(default=3, metadata={"derived": True})
    eos_idx: int = field(default=2, metadata={"derived": True})
    #: Word embedding size and hidden size.
    word_embedding_size: int = 256
    hidden_size: int = 512
    #: Angle feature size (EnvDrop: 128).
    angle_feature_size: int = field(default=ANGLE_FEATURE_SIZE, metadata={"derived": True})
    #: Dropout on words, contexts and hidden states.
    dropout: float = 0.5
    #: Dropout on the visual channels of the route's features.
    feature_dropout: float = 0.4

    def to_dict(self) -> dict:
        return asdict(self)


class Speaker(nn.Module):
    """Route encoder + instruction decoder."""

    def __init__(self, config: SpeakerConfig) -> None:
        super().__init__()
        self.config = config
        visual = config.feature_size + config.angle_feature_size
        half = config.hidden_size // 2
        self.route_lstm = nn.LSTM(visual, half, batch_first=True, bidirectional=True)
        self.view_attention = SoftDotAttention(config.hidden_size, visual)
        self.post_lstm = nn.LSTM(config.hidden_size, half, batch_first=True, bidirectional=True)
        self.embedding = nn.Embedding(
            config.vocab_size, config.word_embedding_size, padding_idx=config.padding_idx
        )
        self.decoder_lstm = nn.LSTM(
            config.word_embedding_size, config.hidden_size, batch_first=True
        )
        self.context_attention = SoftDotAttention(config.hidden_size, config.hidden_size)
        self.projection = nn.Linear(config.hidden_size, config.vocab_size)
        self.drop = nn.Dropout(config.dropout)
        self.feature_drop = nn.Dropout(config.feature_dropout)

    def drop_visual(self, features: torch.Tensor) -> torch.Tensor:
        angle = self.config.angle_feature_size
        return torch.cat([self.feature_drop(features[..., :-angle]), features[..., -angle:]], -1)

    def encode(
        self,
        actions: torch.Tensor,
        panoramas: torch.Tensor,
        route_mask: torch.Tensor,
        already_dropped: bool = False,
    ) -> torch.Tensor:
        """Route contexts [B, T, H].

        Args:
            actions: [B, T, D + 128] feature of the chosen candidate at each step.
            panoramas: [B, T, 36, D + 128] the panorama seen at each step.
            route_mask: [B, T] True where the step is padding.
        """
        if not already_dropped:
            actions = self.drop_visual(actions)
            panoramas = self.drop_visual(panoramas)
        batch, steps = actions.shape[:2]
        contexts, _ = self.route_lstm(actions)  # [B, T, H]
        contexts = self.drop(contexts)
        flat = contexts.reshape(batch * steps, -1)  # [B*T, H]
        _, attended, _ = self.view_attention(
            flat, panoramas.reshape(batch * steps, *panoramas.shape[2:])
        )
        attended = self.drop(attended.reshape(batch, steps, -1))  # [B, T, H]
        contexts, _ = self.post_lstm(attended)
        return self.drop(contexts.masked_fill(route_mask[..., None], 0.0))

    def decode(
        self,
        words: torch.Tensor,
        contexts: torch.Tensor,
        route_mask: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Vocabulary logits [B, L, V] for input words [B, L] given the route contexts."""
        batch, length = words.shape
        embedded = self.drop(self.embedding(words))  # [B, L, E]
        if state is None:
            zeros = contexts.new_zeros(1, batch, self.config.hidden_size)
            state = (zeros, zeros)
        output, state = self.decoder_lstm(embedded, state)  # [B, L, H]
        output = self.drop(output)
        steps = contexts.shape[1]
        queries = output.reshape(batch * length, -1)  # [B*L, H]
        keys = contexts[:, None].expand(batch, length, steps, -1).reshape(batch * length, steps, -1)
        mask = route_mask[:, None].expand(batch, length, steps).reshape(batch * length, steps)
        _, tilde, _ = self.context_attention(queries, keys, mask)
        logits = self.projection(self.drop(tilde)).reshape(batch, length, -1)
        return logits, state

    def loss(
        self,
        actions: torch.Tensor,
        panoramas: torch.Tensor,
        route_mask: torch.Tensor,
        tokens: torch.Tensor,
        already_dropped: bool = False,
    ) -> torch.Tensor:
        """Teacher-forced cross entropy of instructions ``tokens`` [B, L] (no BOS; EOS, pads)."""
        contexts = self.encode(actions, panoramas, route_mask, already_dropped)
        bos = torch.full_like(tokens[:, :1], self.config.bos_idx)
        logits, _ = self.decode(torch.cat([bos, tokens[:, :-1]], 1), contexts, route_mask)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            tokens.reshape(-1),
            ignore_index=self.config.padding_idx,
        )

    @torch.no_grad()
    def generate(
        self,
        actions: torch.Tensor,
        panoramas: torch.Tensor,
        route_mask: torch.Tensor,
        max_length: int = 80,
        sample: bool = False,
        generator: torch.Generator | None = None,
        already_dropped: bool = False,
    ) -> torch.Tensor:
        """Instructions [B, <= max_length] (greedy or sampled), padded after EOS."""
        contexts = self.encode(actions, panoramas, route_mask, already_dropped)
        batch = actions.shape[0]
        word = torch.full((batch, 1), self.config.bos_idx, dtype=torch.long, device=actions.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=actions.device)
        state = None
        out = []
        for _ in range(max_length):
            logits, state = self.decode(word, contexts, route_mask, state)
            logits = logits[:, -1]  # [B, V]
            logits[:, self.config.padding_idx] = float("-inf")
            logits[:, self.config.bos_idx] = float("-inf")
            if sample:
                word = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            else:
                word = logits.argmax(-1, keepdim=True)  # [B, 1]
            word = word.masked_fill(finished[:, None], self.config.padding_idx)
            out.append(word)
            finished |= word[:, 0] == self.config.eos_idx
            if finished.all():
                break
        return torch.cat(out, dim=1)


def load_speaker(path: str | os.PathLike[str]) -> tuple[Speaker, Tokenizer, dict[str, Any]]:
    """A trained speaker (``kind: speaker`` checkpoint), its tokenizer and the payload."""
    tokenizers: list[Tokenizer] = []

    def build(payload: dict[str, Any]) -> Speaker:
        tokenizers.append(Tokenizer(payload["vocabulary"]))  # checked with the weights
        return Speaker(SpeakerConfig(**payload["model_config"]))

    model, payload = load_model(path, "speaker", build)
    return model, tokenizers[0], payload
