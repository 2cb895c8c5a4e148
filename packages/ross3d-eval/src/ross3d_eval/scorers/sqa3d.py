"""SQA3D (test): EM, EM-R and EM per question type (What, Is, How, Can, Which, Others).

`questions` = the balanced questions file (`{"questions": [...]}`), `annotations` = the balanced
annotations file (`{"annotations": [...]}`); predictions JSONL `{"question_id": int, "answer": str}`.
"""

from __future__ import annotations

from pathlib import Path

from ross3d_eval.inputs import (
    get_field,
    index_annotations,
    index_predictions,
    read_json_list,
    read_jsonl,
)
from ross3d_eval.result import Result, pct
from ross3d_eval.text import SQA3D_TYPES, clean_answer, match_leo, match_ross3d, sqa3d_question_type


def load_items(annotations: Path, questions: Path) -> dict[int, tuple[str, str]]:
    """question_id -> (first reference answer, question type)."""
    q_recs = index_annotations(
        read_json_list(questions, key="questions"), lambda r: get_field(r, "question_id", int)
    )
    a_recs = index_annotations(
        read_json_list(annotations, key="annotations"), lambda r: get_field(r, "question_id", int)
    )
    items = {}
    for qid, rec in a_recs.items():
        answers = get_field(rec, "answers", list)
        if not answers or not isinstance(answers[0], dict) or "answer" not in answers[0]:
            raise rec.loc.error('"answers" must be a non-empty list of {"answer": str}')
        if qid not in q_recs:
            raise rec.loc.error(f"question_id {qid} is not in the questions file {questions}")
        question = get_field(q_recs[qid], "question", str)
        items[qid] = (str(answers[0]["answer"]), sqa3d_question_type(question))
    return items


def evaluate(
    predictions: Path, annotations: Path, *, questions: Path, protocol: str = "ross3d", **_
) -> Result:
    items = load_items(annotations, Path(questions))
    recs = index_predictions(
        read_jsonl(predictions), lambda r: get_field(r, "question_id", int), items
    )
    match = match_leo if protocol == "leo" else match_ross3d
    em, emr = [], []
    by_type: dict[str, list[int]] = {t: [] for t in SQA3D_TYPES}
    for qid, (gt, qtype) in items.items():
        if qid in recs:
            pred = clean_answer(get_field(recs[qid], "answer", str))
            e, r = match(pred, [clean_answer(gt)])
        else:
            e, r = 0, 0
        em.append(e)
        emr.append(r)
        by_type[qtype].append(e)
    metrics = {"EM": pct(sum(em) / len(em)), "EM-R": pct(sum(emr) / len(emr))}
    for qtype, flags in by_type.items():
        if flags:  # a type with no questions has no score
            metrics[qtype.capitalize()] = pct(sum(flags) / len(flags))
    missing = [str(q) for q in items if q not in recs]
    return Result("sqa3d", protocol, len(items), len(missing), metrics, missing)
