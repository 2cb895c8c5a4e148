"""The result record of every scorer, the benchmark / protocol tables and the prediction
sidecar: the base that the scorers and the harness both build on."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ross3d_benchmarks import TASKS

from ross3d_eval.errors import EvalInputError, read_json

BENCHMARKS = TASKS  # one definition: ross3d_benchmarks.rules
PROTOCOLS = ("ross3d", "leo", "official")
# Which protocols each benchmark implements (README "Protocols" says what differs).
SUPPORTED_PROTOCOLS = {
    "scanqa": ("ross3d", "leo", "official"),
    "sqa3d": ("ross3d", "leo"),
    "scan2cap": ("ross3d",),
    "scanrefer": ("ross3d",),
    "multi3drefer": ("ross3d",),
}

# Files besides predictions and annotations that a benchmark cannot be scored without.
REQUIRED_FILES = {
    "sqa3d": ("questions",),
    "scan2cap": ("boxes",),
    "scanrefer": ("boxes",),
    "multi3drefer": ("boxes",),
}


@dataclass
class Result:
    """Scores of one benchmark run. `metrics` are percentages (x100); `count` is the number
    of annotated items scored, `missing` how many of them had no prediction (scored as wrong)."""

    benchmark: str
    protocol: str
    count: int
    missing: int
    metrics: dict[str, float]
    missing_ids: list[str] = field(default_factory=list, repr=False)
    # how the predictions were made (their sidecar, `prediction_meta_path`), None if unknown
    inference: dict | None = None

    def to_dict(self) -> dict:
        out = {
            "benchmark": self.benchmark,
            "protocol": self.protocol,
            "count": self.count,
            "missing": self.missing,
            "missing_ids": list(self.missing_ids),
            "metrics": dict(self.metrics),
        }
        if self.inference is not None:
            out["inference"] = dict(self.inference)
        return out

    def write_json(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # `--out results/x.json`
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def table(self):
        """A rich Table of the metrics."""
        from rich.table import Table

        title = f"{self.benchmark} ({self.protocol}): {self.count} items, {self.missing} missing"
        table = Table(title=title)
        table.add_column("metric")
        table.add_column("score", justify="right")
        for name, value in self.metrics.items():
            table.add_row(name, f"{value:.2f}")
        return table


MAX_LISTED = 5  # missing ids named in a message (the result file records them all)


def first_ids(ids: list[str], n: int = MAX_LISTED) -> str:
    """'a, b, c' or 'a, b, c, ... (12 more)' for a message."""
    more = f", ... ({len(ids) - n} more)" if len(ids) > n else ""
    return ", ".join(ids[:n]) + more


def check_missing(predictions: Path, count: int, missing_ids: list[str], strict: bool) -> None:
    """With `strict`, an EvalInputError when any of the `count` annotated items has no
    prediction (without it they are scored as wrong). Scorers call it before the slow metrics."""
    if strict and missing_ids:
        raise EvalInputError(
            predictions,
            f"{len(missing_ids)} of {count} items have no prediction ({first_ids(missing_ids)}); "
            "predict every item, or score without --strict (missing items count as wrong)",
        )


def prediction_meta_path(predictions: Path | str) -> Path:
    """Sidecar of a predictions file (`ross3d-model predict` writes it): a JSON object saying
    how the predictions were made, e.g. {"protocol": "reference", "max_new_tokens": 512, ...}."""
    predictions = Path(predictions)
    return predictions.with_name(predictions.name + ".meta.json")


def read_prediction_meta(predictions: Path | str) -> dict | None:
    path = prediction_meta_path(predictions)
    if not path.is_file():
        return None
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise EvalInputError(path, "expected an object describing the predictions")
    return meta


def pct(x: float) -> float:
    return float(x) * 100.0


def with_scorer(caption_scorer, fn: Callable):
    """Run `fn(scorer)` with the given CaptionScorer, or a temporary one closed afterwards."""
    from ross3d_eval.captions import CaptionScorer

    if caption_scorer is not None:
        return fn(caption_scorer)
    with CaptionScorer() as scorer:
        return fn(scorer)
