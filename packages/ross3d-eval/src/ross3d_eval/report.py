"""Markdown report: our scores beside the published numbers (Ross3D paper table, val unless
noted; SQA3D is test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ross3d_eval.errors import EvalInputError, read_json
from ross3d_eval.result import BENCHMARKS

# (benchmark, metric) rows of the published comparison table, in the paper's order.
ROWS: tuple[tuple[str, str], ...] = (
    ("scanrefer", "Acc@0.25"),
    ("scanrefer", "Acc@0.5"),
    ("multi3drefer", "F1@0.25"),
    ("multi3drefer", "F1@0.5"),
    ("scan2cap", "CIDEr@0.5"),
    ("scan2cap", "BLEU-4@0.5"),
    ("scanqa", "CIDEr"),
    ("scanqa", "EM"),
    ("sqa3d", "EM"),
    ("sqa3d", "EM-R"),
)
# None = not published (Ross3D's Scan2Cap numbers are not confirmed, see REFERENCE section 6).
PUBLISHED: dict[str, tuple[float | None, ...]] = {
    "Ross3D": (61.1, 54.4, 59.6, 54.3, None, None, 107.0, 30.8, 63.0, 65.7),
    "Video-3D-LLM": (58.1, 51.7, 58.0, 52.7, 83.8, 41.3, 102.1, 30.1, 58.6, None),
    "ChatScene": (55.5, 50.2, 57.1, 52.4, 77.1, 36.3, 87.7, 21.6, 54.6, 57.5),
    "LLaVA-3D": (54.1, 42.2, None, None, 79.2, 41.1, 91.7, 27.0, 55.6, None),
}


@dataclass(frozen=True)
class LoadedResult:
    label: str
    benchmark: str
    protocol: str
    metrics: dict[str, float]
    inference: str | None = None  # predict's protocol (the predictions' sidecar), if recorded
    boxes: str | None = None  # the boxes predict grounded / captioned with, if recorded


BOX_TASKS = ("scan2cap", "scanrefer", "multi3drefer")  # predictions made with boxes


def boxes_used(benchmark: str, inference: dict) -> str | None:
    """Which boxes a sidecar says predict used: the proposals file's name, or the GT boxes (an
    oracle upper bound, not the published protocol); None for QA or without a sidecar."""
    if benchmark not in BOX_TASKS or "proposals" not in inference:
        return None
    if inference["proposals"] is None:
        return "GT boxes (oracle)"
    return f"proposals {Path(inference['proposals']).name}"


def load_result(path: Path) -> LoadedResult:
    """A RESULT.json written by `ross3d-eval score`."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not {"benchmark", "protocol", "metrics"} <= data.keys():
        raise EvalInputError(path, 'not a result file (needs "benchmark", "protocol", "metrics")')
    if data["benchmark"] not in BENCHMARKS:
        raise EvalInputError(path, f"unknown benchmark {data['benchmark']!r}")
    if not isinstance(data["metrics"], dict):
        raise EvalInputError(path, '"metrics" must be an object')
    inference = data.get("inference") or {}
    return LoadedResult(
        path.stem, data["benchmark"], data["protocol"], data["metrics"], inference.get("protocol"),
        boxes_used(data["benchmark"], inference),
    )  # fmt: skip


def _protocols(res: LoadedResult) -> str:
    """Scoring protocol, and predict's inference protocol and boxes when the result records
    them."""
    parts = [res.protocol]
    if res.inference is not None:
        parts.append(f"inference: {res.inference}")
    if res.boxes is not None:
        parts.append(f"boxes: {res.boxes}")
    return "; ".join(parts)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_markdown(results: list[LoadedResult]) -> str:
    """One row per published metric; an 'ours' column holding, for each row, the score from the
    result file of that benchmark (the last one given wins), then the published columns."""
    ours: dict[tuple[str, str], tuple[float, str]] = {}
    for res in results:
        for bench, metric in ROWS:
            if res.benchmark == bench and metric in res.metrics:
                ours[(bench, metric)] = (
                    float(res.metrics[metric]),
                    f"{res.label} ({_protocols(res)})",
                )
    header = ["benchmark", "metric", "ours", "source", *PUBLISHED]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, (bench, metric) in enumerate(ROWS):
        value, source = ours.get((bench, metric), (None, "-"))
        published = [_fmt(col[i]) for col in PUBLISHED.values()]
        lines.append("| " + " | ".join([bench, metric, _fmt(value), source, *published]) + " |")
    lines.append("")
    lines.append(
        "Published numbers: Ross3D paper (arXiv 2504.01901) comparison table; val splits except "
        "SQA3D (test). '-' = not published or not scored here."
    )
    return "\n".join(lines) + "\n"


def write_report(paths: list[Path], out: Path | None = None) -> str:
    text = render_markdown([load_result(p) for p in paths])
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    return text
