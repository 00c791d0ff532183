"""The EnvDrop-style word tokenizer, on hand-made texts and the real R2R instructions."""

from __future__ import annotations

import json

import pytest

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
    split_words,
)


def test_split_words_lowercases_and_drops_punctuation():
    assert split_words("Walk past the sofa. Stop!") == ["walk", "past", "the", "sofa", "stop"]
    assert split_words("Turn left, then go up 2 stairs...") == [
        "turn",
        "left",
        "then",
        "go",
        "up",
        "2",
        "stairs",
    ]
    assert split_words("don't  stop") == ["don", "t", "stop"]
    assert split_words(" ?! ") == []


def test_special_ids_and_vocabulary_order():
    assert (PAD_ID, UNK_ID, EOS_ID, BOS_ID) == (0, 1, 2, 3)
    tokenizer = Tokenizer.from_texts(["b a a", "c a b", "d"], min_count=2)
    assert tokenizer.vocab == (*SPECIAL_TOKENS, "a", "b")  # "a" x3, "b" x2; c, d too rare
    assert len(tokenizer) == tokenizer.vocab_size == 6
    with pytest.raises(ValueError):
        Tokenizer(["a", "<PAD>", "<UNK>", "<EOS>", "<BOS>"])
    with pytest.raises(ValueError):
        Tokenizer.from_texts(["a"], min_count=0)


def test_encode_decode():
    tokenizer = Tokenizer.from_texts(["walk past the sofa"])
    ids = tokenizer.encode("Walk past the red sofa.")
    assert ids == [tokenizer.word_to_id[w] for w in ("walk", "past", "the")] + [
        UNK_ID,
        tokenizer.word_to_id["sofa"],
        EOS_ID,
    ]
    assert tokenizer("Walk past the red sofa.") == ids
    assert tokenizer.encode("walk", bos=True) == [BOS_ID, tokenizer.word_to_id["walk"], EOS_ID]
    cut = tokenizer.encode("walk past the sofa", max_length=3)
    assert cut == [tokenizer.word_to_id["walk"], tokenizer.word_to_id["past"], EOS_ID]
    assert tokenizer.encode("", max_length=3) == [EOS_ID]
    assert tokenizer.decode([*ids, PAD_ID, PAD_ID]) == "walk past the <UNK> sofa"
    assert tokenizer.decode([BOS_ID, *cut, 5]) == "walk past"  # stops at <EOS>
    with pytest.raises(ValueError):
        tokenizer.decode([99])
    with pytest.raises(ValueError):
        tokenizer.encode("walk", max_length=0)


def test_save_load_round_trip_is_atomic(tmp_path):
    tokenizer = Tokenizer.from_texts(["go up the stairs", "go down"])
    path = tmp_path / "vocab.json"
    tokenizer.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temp file left
    loaded = Tokenizer.load(path)
    assert loaded.vocab == tokenizer.vocab
    assert loaded.encode("go up") == tokenizer.encode("go up")


@pytest.mark.parametrize(
    "content, problem",
    [
        ("[1, 2]", "not a vocabulary file"),
        (json.dumps({"format": "clipvil-word-tokenizer", "version": 9, "vocab": []}), "version"),
        (json.dumps({"format": "clipvil-word-tokenizer", "version": 1, "vocab": ["a"]}), "start"),
        ("{not json", "malformed JSON"),
    ],
)
def test_load_bad_file_is_a_one_line_data_error(tmp_path, content, problem):
    path = tmp_path / "vocab.json"
    path.write_text(content)
    with pytest.raises(DataError, match=problem) as error:
        Tokenizer.load(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_real_r2r_vocabulary(real_data_dir):
    train = load_episodes(real_data_dir, "train")
    tokenizer = Tokenizer.build_from_episodes(train, min_count=5)
    assert len(tokenizer) == 980  # EnvDrop's train vocabulary (min count 5) without punctuation
    assert tokenizer.vocab[4:8] == ("the", "and", "walk", "turn")  # the most frequent words
    val_unseen = load_episodes(real_data_dir, "val_unseen")
    ids = [i for episode in val_unseen for i in tokenizer.encode(episode.instruction)]
    assert 0.0 < ids.count(UNK_ID) / len(ids) < 0.02  # unseen houses, mostly known words
    own = Tokenizer.build_from_episodes(val_unseen)
    assert all(
        UNK_ID not in own.encode(episode.instruction) for episode in val_unseen
    )  # min count 1 covers every word of its own texts
    first = val_unseen[0].instruction
    assert own.decode(own.encode(first)) == " ".join(split_words(first))
