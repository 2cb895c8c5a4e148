"""Answer cleaning, EM / EM-R matching, SQA3D question types, Scan2Cap caption format."""

import pytest
from ross3d_eval.text import (
    clean_answer,
    match_leo,
    match_ross3d,
    scan2cap_caption,
    sqa3d_question_type,
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("The Brown Chair.", "brown chair"),
        ("  2   chairs ", "two chairs"),
        ("none", "zero"),
        ("0", "zero"),
        ("23", "twenty-three"),
        ("21", "21"),  # only 0-20 and 23 are spelled out
        ("tv", "TV"),  # upper-case again after lower-casing (reference quirk)
        ("3 oclock", "three o'clock"),
        ("turn letf", "turn left"),
        ("walk backwards", "walk backward"),
        ("mat2", "mat"),
        ("an apple", "apple"),
        ("a", "a"),  # an article alone is kept
        ("façade", "faade"),  # 'ç' is removed before its own substitution (reference quirk)
        ("it's left-side: yes", "it's left-side: yes"),
    ],
)
def test_clean_answer(raw, clean):
    assert clean_answer(raw) == clean


def test_match_ross3d_exact_and_refined():
    assert match_ross3d("brown chair", ["chair", "brown chair"]) == (1, 1)
    assert match_ross3d("chair", ["brown chair"]) == (0, 1)  # pred inside an answer
    assert match_ross3d("the brown chair", ["brownchair"]) == (0, 1)  # whitespace ignored
    assert match_ross3d("table", ["brown chair"]) == (0, 0)


def test_match_leo_first_answer_decides():
    # LEO walks the answers in order: the containment of "chair" in "brown chair" is met
    # before the exact second answer, so EM is 0 (Ross3D's rule gives 1).
    assert match_leo("chair", ["brown chair", "chair"]) == (0, 1)
    assert match_ross3d("chair", ["brown chair", "chair"]) == (1, 1)
    assert match_leo("chair", ["chair", "brown chair"]) == (1, 1)
    assert match_leo("lamp", ["chair"]) == (0, 0)


@pytest.mark.parametrize(
    ("question", "qtype"),
    [
        ("What is on the table?", "what"),
        ("  is the door open?", "is"),
        ("Isn't it dark?", "is"),
        ("How many chairs?", "how"),
        ("Can I sit down?", "can"),
        ("Which way is the door?", "which"),
        ("Where is the sink?", "others"),
        ("Am I facing the bed?", "others"),
    ],
)
def test_sqa3d_question_type(question, qtype):
    assert sqa3d_question_type(question) == qtype


def test_scan2cap_caption():
    assert scan2cap_caption("A Chair. It is brown, small") == (
        "sos a chair .  it is brown ,  small eos"
    )
