"""The scoring harness: one entry point that checks its arguments and dispatches to the
benchmark's scorer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ross3d_eval.errors import EvalInputError
from ross3d_eval.result import (
    BENCHMARKS,
    REQUIRED_FILES,
    SUPPORTED_PROTOCOLS,
    Result,
    check_missing,
    read_prediction_meta,
)


def score(
    benchmark: str,
    predictions: Path | str,
    annotations: Path | str,
    questions: Path | str | None = None,
    boxes: Path | str | None = None,
    protocol: str = "ross3d",
    caption_scorer=None,
    label_map: Path | str | None = None,
    strict: bool = False,
) -> Result:
    """Score a predictions JSONL file against official annotation files.

    `questions` is needed by sqa3d, `boxes` by scan2cap / scanrefer / multi3drefer.
    `caption_scorer` (a `CaptionScorer`) lets callers share one METEOR process across calls.
    `label_map` (scanrefer only) is ScanNet's scannetv2-labels.combined.tsv, used to derive
    unique / multiple exactly as ScanRefer when the annotations carry no `eval_type`.
    An annotated item without a prediction is scored as wrong and listed in
    `Result.missing_ids`; with `strict` it is an `EvalInputError` instead (raised before the
    slow caption metrics).
    Raises `EvalInputError` (bad files) or `ValueError` (bad arguments).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if protocol not in SUPPORTED_PROTOCOLS[benchmark]:
        raise ValueError(
            f"protocol {protocol!r} is not defined for {benchmark}; "
            f"choose one of {', '.join(SUPPORTED_PROTOCOLS[benchmark])}"
        )
    if label_map is not None and benchmark != "scanrefer":
        raise ValueError("--label-map is only used by scanrefer")
    given = {"questions": questions, "boxes": boxes, "label_map": label_map}
    for name in REQUIRED_FILES.get(benchmark, ()):
        if given[name] is None:
            raise ValueError(f"{benchmark} needs --{name}")
    for path in (predictions, annotations, questions, boxes, label_map):
        if path is not None and not Path(path).is_file():
            raise EvalInputError(path, "file not found")
    runner = _runner(benchmark)
    result = runner(
        Path(predictions),
        Path(annotations),
        protocol=protocol,
        caption_scorer=caption_scorer,
        strict=strict,
        **{k: Path(v) for k, v in given.items() if v is not None},
    )
    check_missing(Path(predictions), result.count, result.missing_ids, strict)
    result.inference = read_prediction_meta(predictions)
    return result


def _runner(benchmark: str) -> Callable[..., Result]:
    # Imported lazily so `import ross3d_eval` stays cheap.
    from ross3d_eval.scorers import multi3drefer, scan2cap, scanqa, scanrefer, sqa3d

    return {
        "scanqa": scanqa.evaluate,
        "sqa3d": sqa3d.evaluate,
        "scan2cap": scan2cap.evaluate,
        "scanrefer": scanrefer.evaluate,
        "multi3drefer": multi3drefer.evaluate,
    }[benchmark]
