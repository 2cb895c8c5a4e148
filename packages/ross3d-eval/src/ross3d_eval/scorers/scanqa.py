"""ScanQA (val): EM, [EM-R,] BLEU-1..4, METEOR, ROUGE-L, CIDEr.

Annotations: the official ScanQA list (`question_id`, `answers`); predictions JSONL
`{"question_id": str, "answer": str}`.
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
from ross3d_eval.result import Result, check_missing, pct, with_scorer
from ross3d_eval.text import clean_answer, match_leo


def load_answers(path: Path) -> dict[str, list[str]]:
    """question_id -> reference answers, in file order."""
    records = read_json_list(path)
    by_id = index_annotations(records, lambda r: get_field(r, "question_id", str))
    out = {}
    for qid, rec in by_id.items():
        answers = get_field(rec, "answers", list)
        if not answers or not all(isinstance(a, str) for a in answers):
            raise rec.loc.error('"answers" must be a non-empty list of strings')
        out[qid] = answers
    return out


def load_predictions(path: Path, known: dict[str, list[str]]) -> dict[str, str]:
    records = index_predictions(
        read_jsonl(path), lambda r: get_field(r, "question_id", str), known, repr
    )
    return {qid: get_field(rec, "answer", str) for qid, rec in records.items()}


def evaluate(
    predictions: Path,
    annotations: Path,
    *,
    protocol: str = "ross3d",
    caption_scorer=None,
    strict: bool = False,
    **_,
) -> Result:
    answers = load_answers(annotations)
    preds = load_predictions(predictions, answers)
    missing = [qid for qid in answers if qid not in preds]
    check_missing(predictions, len(answers), missing, strict)
    em, emr, hyps, refs = [], [], {}, {}
    for qid, gts in answers.items():
        pred = preds.get(qid)
        if protocol == "leo":
            hyp, ref = clean_answer(pred or ""), [clean_answer(a) for a in gts]
            e, r = match_leo(hyp, ref) if pred is not None else (0, 0)
            emr.append(r)
        else:
            # ross3d: EM on the raw string, n-grams on it with trailing '.' stripped;
            # official: EM on the raw string, n-grams after PTB tokenisation (below).
            e = int(pred is not None and pred in gts)
            hyp = (pred or "").rstrip(".") if protocol == "ross3d" else (pred or "")
            ref = gts
        em.append(e)
        hyps[qid], refs[qid] = [hyp], ref
    if protocol == "official":
        from ross3d_eval.captions import ptb_tokenize

        hyps, refs = ptb_tokenize(hyps), ptb_tokenize(refs)
    caps = with_scorer(caption_scorer, lambda s: s.score(refs, hyps))
    metrics = {"EM": pct(sum(em) / len(em))}
    if protocol == "leo":
        metrics["EM-R"] = pct(sum(emr) / len(emr))
    metrics.update({name: pct(v) for name, v in caps.items()})
    return Result("scanqa", protocol, len(answers), len(missing), metrics, missing)
