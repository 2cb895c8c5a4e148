"""`ross3d-model demo`: the whole pipeline on synthetic scenes, CPU only.

make demo scenes (+ one scene without text: semi-supervised, reconstruction losses only) ->
official-format annotations -> instructions -> BEV -> shards -> train the tiny config ->
predict all five benchmarks -> score with ross3d-eval -> DIR/report.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ross3d_model.inference.predict import BENCHMARKS

DEMO_VIEWS = 4  # views per clip (the tiny model config uses 4)
DEMO_METHOD = "uniform"  # view selection of the demo's clips (and of its preview picture)
DATA_INDEX = "data.json"


@dataclass
class DemoConfig:
    out: Path
    steps: int = 60
    scenes: int = 3  # annotated scenes; one more vision-only scene is added
    seed: int = 0
    max_new_tokens: int = 8

    def __post_init__(self) -> None:
        if self.steps < 1 or self.scenes < 1:
            raise ValueError("demo needs steps >= 1 and scenes >= 1")


@dataclass
class DemoResult:
    report: Path
    scores: Path
    metrics: Path


def _instructions(ann: dict[str, Path], out: Path) -> list[Path]:
    """Convert every benchmark's annotation files (train and val) to instruction JSON lines."""
    from ross3d_data.instructions.registry import ConvertConfig, convert_instructions

    paths = []
    for split in ("train", "val"):
        inputs = {
            "scanqa": (ann[f"scanqa_{split}"], None),
            "sqa3d": (ann[f"sqa3d_annotations_{split}"], ann[f"sqa3d_questions_{split}"]),
            "scan2cap": (ann[f"scanrefer_{split}"], None),
            "scanrefer": (ann[f"scanrefer_{split}"], None),
            "multi3drefer": (ann[f"multi3drefer_{split}"], None),
        }
        for task, (source, questions) in inputs.items():
            path = out / f"{task}_{split}.jsonl"
            cfg = ConvertConfig(task, source, split, path, questions, boxes_json=ann["boxes"])
            convert_instructions(cfg)
            paths.append(path)
    return paths


def prepare_data(cfg: DemoConfig, console: Console, reuse: bool = False) -> dict:
    """Scenes, annotations, instructions, BEV and shards under cfg.out; returns the paths
    (also written to OUT/data.json). reuse=True returns a finished earlier build of the same
    scene count instead of rebuilding."""
    index = Path(cfg.out) / DATA_INDEX
    if reuse and index.is_file():
        saved = json.loads(index.read_text())
        if saved["annotated_scenes"] == cfg.scenes:
            console.print(f"reusing the demo data in {cfg.out}")
            return {
                "scenes": [Path(p) for p in saved["scenes"]],
                "annotations": {k: Path(v) for k, v in saved["annotations"].items()},
                "shards": Path(saved["shards"]),
            }
    data = _build_data(cfg, console)
    record = {
        "annotated_scenes": cfg.scenes,
        "scenes": [str(p) for p in data["scenes"]],
        "annotations": {k: str(v) for k, v in data["annotations"].items()},
        "shards": str(data["shards"]),
    }
    index.write_text(json.dumps(record, indent=2) + "\n")
    return data


def _build_data(cfg: DemoConfig, console: Console) -> dict:
    from ross3d_data.bev.grid import BevConfig
    from ross3d_data.bev.render import render_bev_scenes
    from ross3d_data.shards.build import ShardConfig, build_shards
    from ross3d_data.shards.sample import SampleConfig
    from ross3d_data.synthetic.annotations import write_demo_annotations
    from ross3d_data.synthetic.scenes import make_demo

    out = cfg.out
    console.print("[bold]1/6[/bold] demo scenes")
    # the last scene stays without text (semi-supervised), so annotations are written here
    scenes = make_demo(out / "scenes", n_scenes=cfg.scenes + 1, seed=cfg.seed, annotations=False)
    ann = write_demo_annotations(scenes[: cfg.scenes], out / "annotations")
    console.print(f"[bold]2/6[/bold] instructions ({scenes[-1].name} stays vision-only)")
    instructions = _instructions(ann, out / "instructions")
    console.print("[bold]3/6[/bold] BEV")
    render_bev_scenes([out / "scenes"], out / "bev", BevConfig())
    console.print("[bold]4/6[/bold] shards")
    shard_cfg = ShardConfig(
        scenes=(out / "scenes",),
        out=out / "shards",
        instructions=tuple(instructions),
        bev_dir=out / "bev",
        sample=SampleConfig(views=DEMO_VIEWS, method=DEMO_METHOD),
        overwrite=True,
    )
    build_shards(shard_cfg, console=console)
    return {"scenes": scenes, "annotations": ann, "shards": out / "shards"}


def score_all(pred_paths: dict[str, Path], ann: dict[str, Path]) -> dict[str, dict]:
    """ross3d-eval scores (ross3d protocol) of each benchmark's predictions, one METEOR process."""
    from ross3d_eval.harness import score
    from ross3d_eval.result import with_scorer

    files = {
        "scanqa": (ann["scanqa_val"], None),
        "sqa3d": (ann["sqa3d_annotations_val"], ann["sqa3d_questions_val"]),
        "scan2cap": (ann["scanrefer_val"], None),
        "scanrefer": (ann["scanrefer_val"], None),
        "multi3drefer": (ann["multi3drefer_val"], None),
    }

    def run(scorer) -> dict[str, dict]:
        return {
            bench: score(
                bench,
                path,
                files[bench][0],
                files[bench][1],
                ann["boxes"],
                caption_scorer=scorer,
            ).to_dict()
            for bench, path in pred_paths.items()
        }

    return with_scorer(None, run)


def run_demo(cfg: DemoConfig, console: Console | None = None) -> DemoResult:
    from ross3d_data.preview import PreviewConfig

    from ross3d_model.configuration.run import load_run_config
    from ross3d_model.inference.predict import PredictConfig, output_path, run_predict
    from ross3d_model.report import plot_loss_trends, read_answer_stats, write_report
    from ross3d_model.training.metrics import read_metrics
    from ross3d_model.training.task import train_from_config

    console = console or Console()
    out = Path(cfg.out)
    data = prepare_data(cfg, console, reuse=True)
    console.print(f"[bold]5/6[/bold] train the tiny config for {cfg.steps} steps")
    run = load_run_config("tiny")
    run.train = dataclasses.replace(run.train, max_steps=cfg.steps, seed=cfg.seed)
    vision_list = out / "vision_only_scenes.txt"  # the scene without text: semi-supervised
    vision_list.write_text(data["scenes"][-1].name + "\n")
    run.data = dataclasses.replace(run.data, vision_only_scenes=str(vision_list))
    train_dir = out / "train"
    result = train_from_config(run, train_dir, shards=data["shards"], resume=True)
    console.print("[bold]6/6[/bold] predict and score")
    pcfg = PredictConfig(
        checkpoint=train_dir,
        shards=data["shards"],
        benchmarks=list(BENCHMARKS),
        out=out / "predictions" / "{benchmark}.jsonl",
        boxes=data["annotations"]["boxes"],  # GT boxes as the proposals (Scan2Cap needs some)
        max_new_tokens=cfg.max_new_tokens,
    )
    run_predict(pcfg)
    preds = {b: output_path(pcfg, b) for b in BENCHMARKS}
    scores = score_all(preds, data["annotations"])
    scores_path = out / "scores.json"  # benchmark -> metrics (percent)
    metrics = {bench: result["metrics"] for bench, result in scores.items()}
    scores_path.write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "score_results.json").write_text(json.dumps(scores, indent=2) + "\n")
    scene0 = data["scenes"][0]
    # the views the shards hold: the same count and selection method as build-shards used
    preview = PreviewConfig(views=DEMO_VIEWS, method=DEMO_METHOD, bev_dir=out / "bev")
    records = read_metrics(result.metrics_path)
    pictures = {
        f"BEV of {scene0.name}": out / "bev" / scene0.name / "bev.png",
        f"The {DEMO_VIEWS} views of a clip of {scene0.name} (ross3d-data preview --views "
        f"{DEMO_VIEWS} --method {DEMO_METHOD}, as build-shards chose them)": (
            write_preview_png(scene0, out, preview)
        ),
        "Loss trends (the table's numbers)": plot_loss_trends(records, out / "loss_trends.png"),
    }
    notes = [
        f"{cfg.scenes} annotated synthetic scenes + 1 vision-only scene, {DEMO_VIEWS} views "
        "per clip",
        f"tiny random model, {cfg.steps} optimiser steps on CPU, answers of at most "
        f"{cfg.max_new_tokens} new tokens",
        "grounding candidates: each scene's GT boxes (no detector)",
    ]
    answers = {b: read_answer_stats(b, p) for b, p in preds.items()}
    answers = {b: a for b, a in answers.items() if a is not None}
    report = write_report(out, records, scores, pictures, notes, answers)
    return DemoResult(report, scores_path, result.metrics_path)


def write_preview_png(scene_dir: Path, out: Path, cfg) -> Path:
    from ross3d_data.preview import write_preview

    png = out / "pictures" / f"{scene_dir.name}_views.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    write_preview(scene_dir, png, cfg)
    return png
