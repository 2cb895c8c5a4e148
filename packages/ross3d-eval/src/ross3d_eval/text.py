"""Answer and caption text rules shared by the benchmarks (see the package README)."""

from __future__ import annotations

import re

# SQA3D / LEO answer cleaning, in the reference order. Order matters: the punctuation filter runs
# before the 'ç' and '’' substitutions (so those two never fire), and 'tv' becomes upper-case 'TV'
# after lower-casing. Both quirks are kept so scores equal the published ones.
_CLEAN_RULES: list[tuple[str, str]] = [
    (r"[ ]+$", ""),
    (r"^[ ]+", ""),
    (r" {2,}", " "),
    (r"\.[ ]{2,}", ". "),
    (r"[^a-zA-Z0-9,'\s\-:]+", ""),
    (r"ç", "c"),
    (r"’", "'"),
    (r"\bletf\b", "left"),
    (r"\blet\b", "left"),
    (r"\btehre\b", "there"),
    (r"\brigth\b", "right"),
    (r"\brght\b", "right"),
    (r"\bbehine\b", "behind"),
    (r"\btv\b", "TV"),
    (r"\bchai\b", "chair"),
    (r"\bwasing\b", "washing"),
    (r"\bwaslked\b", "walked"),
    (r"\boclock\b", "o'clock"),
    (r"\bo'[ ]+clock\b", "o'clock"),
    (r"\b0\b", "zero"),
    (r"\bnone\b", "zero"),
    *[
        (rf"\b{n}\b", word)
        for n, word in enumerate(
            [
                "one",
                "two",
                "three",
                "four",
                "five",
                "six",
                "seven",
                "eight",
                "nine",
                "ten",
                "eleven",
                "twelve",
                "thirteen",
                "fourteen",
                "fifteen",
                "sixteen",
                "seventeen",
                "eighteen",
                "nineteen",
                "twenty",
            ],
            start=1,
        )
    ],
    (r"\b23\b", "twenty-three"),
    (r"\b([a-zA-Z]+)([0-9])\b", r"\g<1>"),
    (r"\ba\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\ban\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\bthe\b ([a-zA-Z]+)", r"\g<1>"),
    (r"\bbackwards\b", "backward"),
]
_CLEAN_COMPILED = [(re.compile(p), r) for p, r in _CLEAN_RULES]


def clean_answer(text: str) -> str:
    """SQA3D/LEO `clean_answer`: lower-case, strip punctuation, fix typos, digits to words,
    drop articles."""
    text = text.lower()
    for pattern, repl in _CLEAN_COMPILED:
        text = pattern.sub(repl, text)
    return text


def _squash(text: str) -> str:
    return "".join(text.split())


def _contains_either(pred: str, gt: str) -> bool:
    p, g = _squash(pred), _squash(gt)
    return p in g or g in p


def match_ross3d(pred: str, gts: list[str]) -> tuple[int, int]:
    """(EM, EM-R) as Ross3D's SQA3D scorer: EM iff `pred in gts`; EM-R also when the
    whitespace-free prediction contains, or is contained in, a whitespace-free answer."""
    if pred in gts:
        return 1, 1
    return 0, int(any(_contains_either(pred, gt) for gt in gts))


def match_leo(pred: str, gts: list[str]) -> tuple[int, int]:
    """(EM, EM-R) as LEO's `answer_match`: answers are tried in order and the first that is
    equal (1, 1) or a containment (0, 1) decides, so an exact match after a containment
    match counts only for EM-R."""
    for gt in gts:
        if pred == gt:
            return 1, 1
        if _contains_either(pred, gt):
            return 0, 1
    return 0, 0


SQA3D_TYPES = ("what", "is", "how", "can", "which", "others")


def sqa3d_question_type(question: str) -> str:
    """Question type by the prefix of the left-stripped, lower-cased question (SQA3D/LEO rule:
    'is' also matches 'isn't', 'island', ...)."""
    q = question.lstrip().lower()
    for prefix in SQA3D_TYPES[:-1]:
        if q.startswith(prefix):
            return prefix
    return "others"


EMPTY_CAPTION = "sos eos"


def scan2cap_caption(text: str) -> str:
    """Scan2Cap caption as Ross3D / Video-3D-LLM score it: '.' and ',' split off, lower-cased,
    wrapped in 'sos ' ... ' eos'."""
    return "sos " + text.replace(".", " . ").replace(",", " , ").lower() + " eos"
