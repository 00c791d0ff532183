"""The official VQA accuracy, exactly as GT-Vision-Lab/VQA's ``vqaEval.py`` computes it.

Reference: ``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` of
https://github.com/GT-Vision-Lab/VQA (commit a013f00, "Fixed processing answers bug", the
version the challenge server runs). Per question, with the human answers ``h_1..h_n``
(``n = 10`` in VQA v1/v2) and a prediction ``p``:

1. Newlines and tabs become spaces and both ends are stripped (all answers, always).
2. Only when the human answers are **not all identical** are the human answers and the
   prediction normalised (:func:`normalize_answer`). When all ten agree nothing else is
   done: ``"Yes"`` scores 0 against ten ``"yes"``.
3. ``acc = mean over i of min(1, #{j != i : h_j == p} / 3)`` — the mean over the ten
   leave-one-out subsets of nine humans (Antol et al., ICCV 2015; Goyal et al., CVPR 2017).

The file score is the mean over its questions, overall and grouped by ``answer_type`` and
``question_type``, times 100 and rounded to 2 decimals (``{"overall", "perQuestionType",
"perAnswerType"}``, the keys of the official ``accuracy`` dict).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vqa_ve.data.vqa import VQAAnnotation

#: Marks removed (or turned into spaces) by ``processPunctuation`` (the period has its own rule).
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<")
PUNCTUATION += ("@", "`", ",", "?", "!")
#: A comma between two digits ("1,000"): when present, every mark is deleted, not spaced.
COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
#: The official ``periodStrip`` is ``(?!<=\d)(\.)(?!\d)``: its ``(?!<=\d)`` is a lookahead
#: (a typo for the lookbehind ``(?<!\d)``) that never fails in front of a period, so a
#: period goes unless a digit follows it ("10.5" keeps it, "5." and "a.m" lose it).
PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
#: The official call is ``periodStrip.sub("", text, re.UNICODE)``: ``re.UNICODE`` (32) lands
#: in the ``count`` argument, so at most 32 periods are removed.
OFFICIAL_PERIOD_STRIP_COUNT = int(re.UNICODE)
#: ``manualMap``: number words become digits ("none" counts as zero).
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
#: Words dropped after lower-casing.
ARTICLES = frozenset({"a", "an", "the"})
#: The official ``contractions`` table, entry for entry (its capitalised keys never match,
#: since words are lower-cased first, and "somebody'd" maps to "somebodyd": both as official).
CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
#: Humans agreeing with a prediction for full credit.
MATCHES_FOR_FULL_CREDIT = 3
#: Distinct answers whose processed form is remembered (answers repeat a lot: "yes", "2").
PROCESSED_CACHE_SIZE = 1 << 16
#: Scores are reported on 0-100, rounded to this many decimals (``VQAEval(n=2)``).
REPORT_DECIMALS = 2


def clean_whitespace(text: str) -> str:
    """Newlines and tabs to spaces, then strip both ends (applied to every answer)."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """``processPunctuation``: each mark is deleted when it touches a space in ``text`` (or
    ``text`` has a comma between digits), else replaced by a space; then periods not
    followed by a digit are deleted."""
    delete_all = COMMA_BETWEEN_DIGITS.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if delete_all or f"{mark} " in text or f" {mark}" in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=OFFICIAL_PERIOD_STRIP_COUNT)


def process_digit_article(text: str) -> str:
    """``processDigitArticle``: lower-case, split on whitespace, number words to digits,
    drop articles, fix contractions ("dont" -> "don't"), join with single spaces."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


@functools.lru_cache(maxsize=PROCESSED_CACHE_SIZE)
def _processed(text: str) -> str:
    """``processDigitArticle(processPunctuation(text))`` (pure, so remembered)."""
    return process_digit_article(process_punctuation(text))


def normalize_answer(text: str) -> str:
    """The full official normalisation (whitespace, punctuation, digits, articles,
    contractions); also the normalisation of the training answer vocabulary."""
    return _processed(clean_whitespace(text))


def question_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """Accuracy in [0, 1] of ``prediction`` against the humans' answers of one question.

    The mean over the leave-one-out subsets of ``min(1, matches / 3)``; answers are
    normalised only when the humans do not all agree (see the module docstring).
    """
    if not human_answers:
        raise ValueError("a question needs at least one human answer to be scored")
    humans = [clean_whitespace(answer) for answer in human_answers]
    predicted = clean_whitespace(prediction)
    if len(set(humans)) > 1:
        humans = [_processed(answer) for answer in humans]
        predicted = _processed(predicted)
    matches = sum(human == predicted for human in humans)
    subset_scores = [
        min(1.0, (matches - (human == predicted)) / MATCHES_FOR_FULL_CREDIT) for human in humans
    ]
    return sum(subset_scores) / len(subset_scores)


def _percent(values: Sequence[float]) -> float:
    return round(100 * sum(values) / len(values), REPORT_DECIMALS)


def accuracy_summary(
    scored: Iterable[tuple[str, str, float]],
) -> dict[str, float | dict[str, float]]:
    """``{"overall", "perQuestionType", "perAnswerType"}`` on 0-100 (2 decimals) from
    ``(question_type, answer_type, accuracy in [0, 1])`` triples, in the order scored."""
    overall: list[float] = []
    by_question_type: dict[str, list[float]] = {}
    by_answer_type: dict[str, list[float]] = {}
    for question_type, answer_type, accuracy in scored:
        overall.append(accuracy)
        by_question_type.setdefault(question_type, []).append(accuracy)
        by_answer_type.setdefault(answer_type, []).append(accuracy)
    if not overall:
        raise ValueError("no questions to score")
    return {
        "overall": _percent(overall),
        "perQuestionType": {name: _percent(v) for name, v in by_question_type.items()},
        "perAnswerType": {name: _percent(v) for name, v in by_answer_type.items()},
    }


def question_accuracies(
    annotations: Sequence[VQAAnnotation], predictions: Mapping[int, str]
) -> dict[int, float]:
    """Accuracy in [0, 1] of every annotated question (``predictions`` must cover them)."""
    return {
        annotation.question_id: question_accuracy(
            predictions[annotation.question_id], [a.answer for a in annotation.answers]
        )
        for annotation in annotations
    }


def evaluate_vqa(
    annotations: Sequence[VQAAnnotation], predictions: Mapping[int, str]
) -> dict[str, float | dict[str, float]]:
    """The official accuracy dict of ``predictions`` (question_id -> answer) over
    ``annotations``, accumulated in annotation-file order as ``VQAEval.evaluate`` does."""
    accuracies = question_accuracies(annotations, predictions)
    return accuracy_summary(
        (a.question_type, a.answer_type, accuracies[a.question_id]) for a in annotations
    )
