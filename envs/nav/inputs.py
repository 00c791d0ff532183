"""What the R2R Gymnasium environments read: their settings, episodes, words and features.

- :class:`R2REnvConfig`: the settings of :class:`envs.gym_env.R2RNavEnv` and
  :class:`envs.gym_env.R2RVectorEnv`;
- :func:`encode_instructions`: every instruction as a row of token ids ``[N, L]``;
- :class:`EpisodeOrder`: which episode comes next (shuffled epochs, or file order);
- :class:`PanoramaFeatures`: the ``[36, D]`` features of the viewpoints of a world, preloaded
  into one array or read from a feature store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from envs.constants import NUM_VIEWS
from envs.episodes import Episode, load_episodes
from envs.errors import DataError
from envs.features import FeatureStore, feature_key, open_features
from envs.simulator import SimWorld
from envs.tokenizer import Tokenizer

#: Episode orders: shuffled epochs drawn with the env's ``np_random``, or file order.
EPISODE_ORDERS = ("random", "sequential")


@dataclass(frozen=True)
class R2REnvConfig:
    """Settings of the R2R navigation environments (``clipvil/R2R-v0``)."""

    #: Data root: ``DIR/connectivity/{scan}_connectivity.json`` and ``DIR/R2R_{split}.json``.
    data_dir: str | os.PathLike[str]
    #: Panorama features: an HDF5 / TSV file (see :func:`envs.features.open_features`) or an
    #: open :class:`envs.features.FeatureStore` (left open by the env).
    features: str | os.PathLike[str] | FeatureStore
    #: Split name (``"train"``, ``"val_unseen"``, ...), a ``.json`` file, or the episodes.
    split: str | Sequence[Episode] = "train"
    #: Feature size ``D``: must equal the stored width (default: the stored width); to take
    #: the first N columns of a wider file, pass a store opened with ``feature_columns``.
    feature_dim: int | None = None
    #: ``text -> token ids``; default: a :class:`envs.tokenizer.Tokenizer` built from the
    #: loaded episodes. Pass one tokenizer to every split so that ids agree. A ``Tokenizer``
    #: cuts long instructions to end in ``<EOS>``; other callables are cut to ``L`` ids.
    tokenizer: Callable[[str], Sequence[int]] | None = None
    #: Instruction length ``L``: longer encodings are cut, shorter ones padded with 0.
    max_instruction_length: int = 80
    #: Actions (STOP included) before an episode is truncated.
    max_actions: int = 35
    #: EnvDrop's shaped reward (+-2 on STOP, +-1 per move); otherwise 1 for a successful STOP
    #: (:mod:`envs.nav.rewards`).
    shaped_reward: bool = True
    #: ``"random"``: every episode once per epoch, shuffled with the env's ``np_random``;
    #: ``"sequential"``: file order, so that evaluation visits every instruction once.
    episode_order: str = "random"
    #: Gather the features of all viewpoints of the loaded scans into one ``[G, 36, D]``
    #: array at start-up (fast steps) instead of reading the store per agent and step.
    preload_features: bool = True

    def __post_init__(self) -> None:
        if self.max_instruction_length < 1 or self.max_actions < 1:
            raise ValueError("max_instruction_length and max_actions must be >= 1")
        if self.episode_order not in EPISODE_ORDERS:
            raise ValueError(
                f"episode_order must be one of {EPISODE_ORDERS}, got {self.episode_order!r}"
            )


def resolve_episodes(config: R2REnvConfig) -> list[Episode]:
    """The episodes a config names (a split, a file, or the list itself), never empty."""
    if isinstance(config.split, str):
        episodes = load_episodes(config.data_dir, config.split)
        if not episodes:
            raise DataError(config.split, "the split has no episodes")
        return episodes
    episodes = list(config.split)
    if not episodes:
        raise ValueError("the episode list is empty")
    return episodes


def encode_instructions(
    episodes: Sequence[Episode], tokenizer: Callable[[str], Sequence[int]], max_length: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Token ids ``[N, L]`` (0-padded, cut to ``L``), lengths ``[N]`` and the vocabulary size.

    A :class:`Tokenizer` is asked for at most ``L`` ids (its cut ends in ``<EOS>``); any
    other callable's ids are cut to the first ``L``.

    The vocabulary size is ``len(tokenizer)`` when the tokenizer has a length, else one more
    than the largest id seen.
    """
    ids = np.zeros((len(episodes), max_length), dtype=np.int64)  # [N, L]
    lengths = np.zeros(len(episodes), dtype=np.int64)  # [N]
    for row, episode in enumerate(episodes):
        if isinstance(tokenizer, Tokenizer):  # cut ending in <EOS>, as EnvDrop cuts
            tokens = tokenizer.encode(episode.instruction, max_length)
        else:
            tokens = list(tokenizer(episode.instruction))[:max_length]
        ids[row, : len(tokens)] = tokens
        lengths[row] = len(tokens)
    if (ids < 0).any():
        raise ValueError("the tokenizer returned a negative id")
    largest = int(ids.max(initial=0))
    vocab_size = len(tokenizer) if hasattr(tokenizer, "__len__") else largest + 1
    if largest >= vocab_size:
        raise ValueError(f"the tokenizer returned id {largest} >= its size {vocab_size}")
    return ids, lengths, vocab_size


class EpisodeOrder:
    """Hands out episode indices epoch after epoch, each episode once per epoch."""

    def __init__(self, count: int, order: str) -> None:
        self.count = count
        self.order = order
        self._queue = np.zeros(0, dtype=np.int64)
        self._position = 0
        self._epoch = -1
        self.started = False

    def restart(self, rng: np.random.Generator) -> None:
        """Begin again at epoch 0 (a new shuffle for the random order)."""
        self._epoch = -1
        self._refill(rng)
        self.started = True

    def _refill(self, rng: np.random.Generator) -> None:
        self._epoch += 1
        self._position = 0
        if self.order == "random":
            self._queue = rng.permutation(self.count).astype(np.int64)
        else:
            self._queue = np.arange(self.count, dtype=np.int64)

    def take(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n`` episode indices ``[n]`` and the epoch ``[n]`` each belongs to."""
        indices, epochs = [], []
        while n > 0:
            if self._position == self.count:
                self._refill(rng)
            part = self._queue[self._position : self._position + n]
            self._position += part.shape[0]
            n -= part.shape[0]
            indices.append(part)
            epochs.append(np.full(part.shape[0], self._epoch, dtype=np.int64))
        if not indices:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(indices), np.concatenate(epochs)


class PanoramaFeatures:
    """The ``[36, D]`` features of every included viewpoint of a world.

    Checks at start-up that the store has every included viewpoint (:class:`DataError`
    naming the file otherwise). With ``preload`` all of them are read into one array
    ``[G, 36, D]`` (rows of excluded viewpoints are zero) and a store opened here is closed.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | FeatureStore,
        world: SimWorld,
        feature_dim: int | None = None,
        preload: bool = True,
    ) -> None:
        owned = not isinstance(source, FeatureStore)
        store = open_features(source, feature_dim) if owned else source
        try:
            if feature_dim is not None and store.feature_dim != feature_dim:
                raise DataError(
                    store.path, f"features have size {store.feature_dim}, expected {feature_dim}"
                )
            self.world = world
            self.feature_dim = store.feature_dim
            self.path = store.path
            included = np.flatnonzero(world.included)  # [G_included]
            keys = [(world.scan_of(g), world.viewpoint_ids[g]) for g in included]
            missing = [key for key in keys if key not in store]
            if missing:
                raise DataError(
                    store.path,
                    f"no features for viewpoint {feature_key(*missing[0])} "
                    f"({len(missing)} of {len(keys)} viewpoints of the loaded scans missing)",
                )
            self._preloaded: np.ndarray | None = None
            if preload:
                array = np.zeros((world.size, NUM_VIEWS, self.feature_dim), np.float32)
                for g, key in zip(included, keys, strict=True):
                    array[g] = store.get(*key)  # [36, D]
                self._preloaded = array
        except BaseException:
            if owned:
                store.close()
            raise
        self._store: FeatureStore | None = store
        self._owned = owned
        if preload and owned:
            self.close()

    @property
    def preloaded(self) -> np.ndarray | None:
        """The ``[G, 36, D]`` array when preloaded, else None."""
        return self._preloaded

    def views(self, location: np.ndarray) -> np.ndarray:
        """Features of the viewpoints ``location`` [B] (global ids): ``[B, 36, D]`` float32."""
        if self._preloaded is not None:
            return self._preloaded[location]  # [B, 36, D]
        if self._store is None:
            raise ValueError(f"{self.path}: the features are closed")
        world = self.world
        return np.stack(
            [self._store.get(world.scan_of(g), world.viewpoint_ids[g]) for g in location]
        )  # [B, 36, D]

    def close(self) -> None:
        """Close the store if it was opened here (a store passed in is left open)."""
        if self._store is not None and self._owned:
            self._store.close()
        self._store = None
