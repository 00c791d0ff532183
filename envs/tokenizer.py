"""An R2R-EnvDrop-style word tokenizer: lower-case words -> ids, with a small JSON vocabulary.

Text is lower-cased and split on non-word characters; words are kept and punctuation is
dropped (EnvDrop keeps punctuation as tokens; here it carries no meaning for the agent).
The vocabulary starts with the special tokens ``<PAD>`` = 0, ``<UNK>`` = 1, ``<EOS>`` = 2
and ``<BOS>`` = 3, followed by every word seen at least ``min_count`` times, most frequent
first (ties alphabetical, so the same texts always give the same ids).

:meth:`Tokenizer.encode` returns the word ids followed by ``<EOS>``; an encoding longer than
``max_length`` is cut and ends with ``<EOS>`` (EnvDrop's ``encode_sentence``). Padding with
``<PAD>`` = 0 is left to whoever batches the ids.

Example::

    tokenizer = Tokenizer.build_from_episodes(load_episodes(data_dir, "train"), min_count=5)
    ids = tokenizer.encode("Walk past the sofa.", max_length=80)  # [walk, past, the, sofa, <EOS>]
    tokenizer.save("vocab.json")
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from envs.episodes import Episode
from envs.errors import DataError
from envs.fileio import read_json, write_json

PAD_TOKEN = "<PAD>"
UNK_TOKEN = "<UNK>"
EOS_TOKEN = "<EOS>"
BOS_TOKEN = "<BOS>"
#: The special tokens, in id order: their ids are their positions.
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, EOS_TOKEN, BOS_TOKEN)
PAD_ID, UNK_ID, EOS_ID, BOS_ID = range(len(SPECIAL_TOKENS))

#: A word: a maximal run of word characters (letters, digits, underscore).
WORD_PATTERN = re.compile(r"\w+")
#: ``"format"`` value of a saved vocabulary file.
VOCAB_FORMAT = "clipvil-word-tokenizer"
VOCAB_VERSION = 1


def split_words(text: str) -> list[str]:
    """Lower-cased words of ``text``; punctuation and spaces only separate them."""
    return WORD_PATTERN.findall(text.lower())


class Tokenizer:
    """Words <-> ids over a fixed vocabulary whose first entries are :data:`SPECIAL_TOKENS`."""

    def __init__(self, vocab: Sequence[str]) -> None:
        vocab = list(vocab)
        if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with {list(SPECIAL_TOKENS)}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("a vocabulary must not repeat a word")
        #: Id -> word.
        self.vocab: tuple[str, ...] = tuple(vocab)
        #: Word -> id.
        self.word_to_id: dict[str, int] = {word: i for i, word in enumerate(vocab)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> Tokenizer:
        """The vocabulary of the words seen at least ``min_count`` times in ``texts``."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(word for text in texts for word in split_words(text))
        words = sorted(
            (w for w, n in counts.items() if n >= min_count and w not in SPECIAL_TOKENS),
            key=lambda w: (-counts[w], w),
        )
        return cls([*SPECIAL_TOKENS, *words])

    @classmethod
    def build_from_episodes(cls, episodes: Iterable[Episode], min_count: int = 1) -> Tokenizer:
        """The vocabulary of the instructions of some episodes (EnvDrop uses train, min 5)."""
        return cls.from_texts((episode.instruction for episode in episodes), min_count)

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return len(self.vocab)

    def encode(self, text: str, max_length: int | None = None, bos: bool = False) -> list[int]:
        """Ids of the words of ``text`` then ``<EOS>`` (``<BOS>`` first when ``bos``).

        Unknown words map to ``<UNK>``. An encoding longer than ``max_length`` keeps its
        first ``max_length - 1`` ids and ends with ``<EOS>``. No padding is added.
        """
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        ids = [BOS_ID] if bos else []
        ids += [self.word_to_id.get(word, UNK_ID) for word in split_words(text)]
        ids.append(EOS_ID)
        if max_length is not None and len(ids) > max_length:
            ids = [*ids[: max_length - 1], EOS_ID]
        return ids

    def __call__(self, text: str) -> list[int]:
        """:meth:`encode` without a length limit (the tokenizer as a ``text -> ids`` callable)."""
        return self.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids`` up to the first ``<EOS>``, joined by spaces.

        ``<PAD>`` and ``<BOS>`` are skipped; an id outside the vocabulary is a ``ValueError``.
        """
        words: list[str] = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            if not 0 <= i < len(self.vocab):
                raise ValueError(f"id {i} is outside the vocabulary of {len(self.vocab)} words")
            words.append(self.vocab[i])
        return " ".join(words)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON, atomically."""
        write_json(
            path, {"format": VOCAB_FORMAT, "version": VOCAB_VERSION, "vocab": list(self.vocab)}
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a vocabulary written by :meth:`save` (:class:`DataError` naming the file if bad)."""
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
            raise DataError(path, f"not a vocabulary file (expected format {VOCAB_FORMAT!r})")
        if data.get("version") != VOCAB_VERSION:
            raise DataError(path, f"unsupported vocabulary version {data.get('version')!r}")
        vocab = data.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
            raise DataError(path, "vocab must be a list of strings")
        try:
            return cls(vocab)
        except ValueError as err:
            raise DataError(path, str(err)) from None
