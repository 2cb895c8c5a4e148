"""OUTPUT_DIR/metrics.jsonl (one JSON object per logged optimiser step) and the loss-curve PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

LOSS_KEYS = ("loss", "lm", "cross_view", "bev", "grounding")
TIMING_KEYS = ("elapsed_s", "cpu_s", "data_wait_s")  # wall-clock: differ between equal runs
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "loss_curve.png"


class MetricsLog:
    """Appends records to metrics.jsonl. On resume, `truncate_after(step)` first drops records
    that a killed run wrote after its last checkpoint, so the file reads as one clean run."""

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / METRICS_FILE

    def truncate_after(self, step: int) -> None:
        kept = (
            [r for r in read_metrics(self.path) if r["step"] <= step] if self.path.exists() else []
        )
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        for key in ("step", *LOSS_KEYS, "lr"):
            if key not in record:
                raise ValueError(f"metrics record lacks {key!r}: {record}")
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a metrics.jsonl; a clear error naming the file and line on a corrupt line."""
    path = Path(path)
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err})") from err
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{path}:{number}: a record needs a 'step'")
        records.append(record)
    return records


def plot_loss_curves(records: list[dict], out_png: str | Path, title: str = "") -> Path:
    """One panel per named loss (total first) against the optimiser step; absent values skipped.
    Cross-view appears only on the steps where it ran (every k-th)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in LOSS_KEYS if any(_finite(r.get(k)) for r in records)]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 3.0))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, key in zip(axes, keys, strict=False):
        points = [(r["step"], r[key]) for r in records if _finite(r.get(key))]
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, marker="." if len(points) < 60 else None, lw=1, alpha=0.6)
        if len(values) >= 8:  # mixed-task batches make single steps noisy: show the trend
            window = max(3, len(values) // 6)
            ax.plot(steps[window - 1 :], _running_mean(values, window), lw=2, label="mean")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if not keys:
        axes[0].text(0.5, 0.5, "no losses logged", ha="center", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _running_mean(values, window: int) -> list[float]:
    return [sum(values[i - window : i]) / window for i in range(window, len(values) + 1)]


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
