"""SQA3D (SilongYong/SQA3D ``balanced/v1_balanced_{questions,sqa_annotations}_<split>_scannetv2.json``).

Questions file: ``{"questions": [{"question_id": int, "scene_id", "situation",
"alternative_situation": [str], "question"}]}``; annotations file: ``{"annotations":
[{"question_id": int, "scene_id", "answers": [{"answer": str, ...}], ...}]}``, joined on
``question_id``. Train expands every alternative situation into its own sample (as
Video-3D-LLM does); val/test use the main situation only.

``text`` ("published", the default): the public conversion's text (Ross3D
``scripts/3d/preprocessing/process_sqa3d.py`` lines 37-45): situation and question verbatim,
every alternative situation kept, an empty one included (its prompt then starts with two
spaces). "cleaned": surrounding whitespace stripped and empty alternatives dropped (our former
rule). The public lists the alternatives before the main situation; the order of samples does
not matter (training shuffles), so ours keeps the main one first and its id unsuffixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ross3d_data.instructions import prompts
from ross3d_data.instructions.common import (
    BoxTable,
    ConvertResult,
    RowError,
    SourceFiles,
    get,
    guess_hint,
    load_json,
    run_rows,
)
from ross3d_data.instructions.schema import Instruction

SQA3D_TEXT_RULES = ("published", "cleaned")


def _index_questions(questions: Any, path: Path | str) -> dict[int, dict]:
    if not isinstance(questions, dict) or not isinstance(questions.get("questions"), list):
        raise ValueError(f"{path}: expected {{'questions': [...]}} (SQA3D questions file)")
    return {
        q["question_id"]: q
        for q in questions["questions"]
        if isinstance(q, dict) and isinstance(q.get("question_id"), int)
    }


def _situations(q: dict, situation: str, split: str, text: str) -> list[str]:
    """The main situation, then (train) the alternatives under the ``text`` rule."""
    if split != "train":
        return [situation]
    alts = [s for s in q.get("alternative_situation", []) if isinstance(s, str)]
    if text == "cleaned":
        alts = [s.strip() for s in alts if s.strip()]
    return [situation, *alts]


def convert(
    annotations: Any,
    questions: Any,
    split: str,
    questions_path: Path | str = "<questions>",
    text: str = "published",
) -> ConvertResult:
    if text not in SQA3D_TEXT_RULES:
        raise ValueError(f"sqa3d text rule must be one of {SQA3D_TEXT_RULES}, got {text!r}")
    if not isinstance(annotations, dict) or not isinstance(annotations.get("annotations"), list):
        raise ValueError("expected {'annotations': [...]} (SQA3D annotations file)")
    by_qid = _index_questions(questions, questions_path)
    clean = str.strip if text == "cleaned" else str

    def one(row: Any) -> Iterator[Instruction]:
        qid = get(row, "question_id", int)
        scene_id = get(row, "scene_id", str)
        if qid not in by_qid:
            raise RowError("question_id not in questions file")
        q = by_qid[qid]
        question = clean(get(q, "question", str))
        situation = clean(get(q, "situation", str))
        answers = get(row, "answers", list)
        if not answers or not isinstance(answers[0], dict):
            raise RowError("missing 'answers'")
        answer = get(answers[0], "answer", str)
        situations = _situations(q, situation, split, text)
        qtype = prompts.sqa3d_question_type(question)
        for k, sit in enumerate(situations):
            yield Instruction(
                id=f"sqa3d/{split}/{qid}" + (f"/{k}" if k else ""),
                scene_id=scene_id,
                task="sqa3d",
                split=split,
                prompt=prompts.SQA3D.format(situation=sit, question=question),
                answers=[answer],
                question_type=qtype,
                eval={"question_id": qid, "situation": sit, "question_type": qtype},
            )

    return run_rows(ConvertResult("sqa3d", split), annotations["annotations"], one)


def convert_files(
    src: SourceFiles, split: str, boxes: BoxTable | None = None, text: str = "published"
) -> ConvertResult:
    if src.questions is None:
        raise ValueError("sqa3d needs --questions (v1_balanced_questions_<split>_scannetv2.json)")
    annotations = load_json(src.input)
    if not isinstance(annotations, dict) or not isinstance(annotations.get("annotations"), list):
        hint = guess_hint(annotations, "sqa3d")
        if isinstance(annotations, dict) and "questions" in annotations:
            hint = (
                "; it is a questions file: pass it as --questions, the annotations as --annotations"
            )
        raise ValueError(
            f"{src.input}: not an SQA3D annotations file: expected {{'annotations': [...]}}{hint}"
        )
    return convert(annotations, load_json(src.questions), split, src.questions, text)
