"""Prediction throughput on CPU: items/s at batch 1, batch 8, and batch 8 with per-clip prefix
reuse, for the tiny and mid model configs (untrained, fp32), through `run_predict`.

    uv run python benchmarks/bench_predict.py [--configs tiny mid] [--questions 48]
        [--new-tokens 32] [--work DIR]

Builds the demo shards (2 annotated scenes, 4 views per clip), then adds `--questions` ScanQA
val questions per clip (the real benchmarks hold ~66 questions per scene) to the shards'
instruction index. Answers are `--new-tokens` long (an untrained model rarely emits
`<|im_end|>`; the summary prints the mean answer length). Checks that the three settings
write identical prediction files, and prints items/s and the speed-up per item.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

QUESTIONS = (
    "What color is the chair?",
    "What is in the right corner of the room by the door?",
    "Where is the lamp placed?",
    "How many chairs are at the table?",
    "What is under the window, next to the wardrobe with the mirror?",
    "What kind of table is it?",
)


def add_questions(shards: Path, per_clip: int) -> int:
    """Append `per_clip` ScanQA val questions per clip key to instructions-val.jsonl."""
    index = shards / "instructions-val.jsonl"
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    clips = sorted({r["scene_id"] for r in rows})
    template = next(r for r in rows if r["task"] == "scanqa")
    extra = []
    for clip in clips:
        for i in range(per_clip):
            qid = f"bench-{clip}-{i}"
            prompt = f"{QUESTIONS[i % len(QUESTIONS)]} (question {i})"
            extra.append({**template, "id": f"scanqa/val/{qid}", "scene_id": clip, "prompt": prompt,
                          "eval": {**template["eval"], "question_id": qid}})  # fmt: skip
    index.write_text("".join(json.dumps(r) + "\n" for r in rows + extra))
    return len(extra)


def export_untrained(config: str, shards: Path, out: Path) -> Path:
    import torch
    from ross3d_model.configuration.model import load_config
    from ross3d_model.configuration.run import DataConfig
    from ross3d_model.training.task import Ross3DTask

    task = Ross3DTask(load_config(config), shards, DataConfig())
    torch.manual_seed(0)
    model = task.build_model()
    task.export(model, model.state_dict(), out / "model")
    return out


def time_setting(run_dir: Path, shards: Path, out: Path, batch: int, reuse: bool, tokens: int):
    from ross3d_model.inference.predict import PredictConfig, run_predict

    cfg = PredictConfig(
        run_dir, shards, ["scanqa"], out, batch_size=batch, max_new_tokens=tokens,
        device="cpu", dtype="fp32", prefix_reuse=reuse,
    )  # fmt: skip
    start = time.perf_counter()
    summary = run_predict(cfg)[0]
    return summary.written, time.perf_counter() - start


def bench_config(config: str, work: Path, shards: Path, tokens: int) -> None:
    run_dir = export_untrained(config, shards, work / f"run-{config}")
    settings = [("batch 1", 1, False), ("batch 8", 8, False), ("batch 8 + prefix reuse", 8, True)]
    outputs, rates = [], []
    for name, batch, reuse in settings:
        out = work / f"{config}-{batch}-{reuse}.jsonl"
        for old in (out, out.with_name(out.name + ".meta.json")):  # predict would resume
            old.unlink(missing_ok=True)
        n, seconds = time_setting(run_dir, shards, out, batch, reuse, tokens)
        rates.append(n / seconds)
        outputs.append(out.read_text())
        print(f"{config:5s} {name:24s} {n} items in {seconds:7.1f} s: {n / seconds:6.2f} items/s")
    answers = [json.loads(line)["answer"] for line in outputs[0].splitlines()]
    chars = sum(len(a) for a in answers) / len(answers)
    print(f"{config:5s} identical predictions across settings: {len(set(outputs)) == 1}; "
          f"speed-up per item vs batch 1: batch 8 x{rates[1] / rates[0]:.2f}, "
          f"batch 8 + reuse x{rates[2] / rates[0]:.2f}; answers: mean {chars:.0f} characters, "
          f"{len(set(answers))} distinct")  # fmt: skip


def _linear_flops(cfg_llm, tokens: int) -> float:
    """Forward FLOPs of the Qwen2 blocks' matmuls (q, k, v, o, gate, up, down) for `tokens`."""
    d, f, layers = cfg_llm.hidden_size, cfg_llm.intermediate_size, cfg_llm.num_layers
    kv = d // cfg_llm.num_heads * cfg_llm.num_kv_heads
    return 2 * layers * tokens * (2 * d * d + 2 * d * kv + 3 * d * f)


def _attention_flops(cfg_llm, queries: int, context_start: int) -> float:
    """QK^T and AV FLOPs of `queries` new tokens after `context_start` cached ones (causal)."""
    mean_context = context_start + (queries + 1) / 2
    return 4 * cfg_llm.num_layers * cfg_llm.hidden_size * queries * mean_context


def project_7b(per_scene: float, prefix_text: int, suffix: int, answer: int, batch: int):
    """TFLOP per item of the 7b config (analytic count, not a measurement): vision tower +
    projector + LLM prefill + greedy decoding (lm_head on the last position only)."""
    from ross3d_model.configuration.model import load_config

    cfg = load_config("7b")
    v, llm = cfg.vision, cfg.llm
    views = cfg.tokens.num_views
    patches = (v.image_size // v.patch_size) ** 2
    per_frame = (
        2
        * v.num_layers
        * patches
        * (4 * v.hidden_size**2 + 2 * v.hidden_size * v.intermediate_size)
    )
    per_frame += 4 * v.num_layers * v.hidden_size * patches**2
    per_frame += 2 * patches * (v.hidden_size * llm.hidden_size + llm.hidden_size**2)  # projector
    prefix = prefix_text + views * cfg.tokens_per_frame
    prefix_flops = views * per_frame + _linear_flops(llm, prefix) + _attention_flops(llm, prefix, 0)
    head = 2 * llm.hidden_size * llm.vocab_size
    suffix_flops = _linear_flops(llm, suffix) + _attention_flops(llm, suffix, prefix) + head
    decode = sum(
        _linear_flops(llm, 1) + _attention_flops(llm, 1, prefix + suffix + t) + head
        for t in range(answer - 1)
    )
    rows = {
        "batch 1 (or batch 8, no reuse)": prefix_flops + suffix_flops + decode,
        f"batch {batch} + prefix reuse inside the batch": prefix_flops / batch
        + suffix_flops
        + decode,
        "+ prefix carried across batches (PrefixCache)": prefix_flops / per_scene
        + suffix_flops
        + decode,
    }
    print(f"7b FLOP projection ({prefix} prefix tokens, {suffix} suffix, {answer} answer tokens, "
          f"{per_scene:.1f} questions per clip): prefix {prefix_flops / 1e12:.1f} TFLOP "
          f"(vision {views * per_frame / 1e12:.1f}), suffix {suffix_flops / 1e12:.2f}, "
          f"decode {decode / 1e12:.2f}")  # fmt: skip
    for name, flops in rows.items():
        print(f"  {name:48s} {flops / 1e12:7.2f} TFLOP per item")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", nargs="+", default=["tiny", "mid"])
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--project-only", action="store_true", help="only the 7b FLOP count")
    args = parser.parse_args()
    # ScanQA val: 4,675 questions over 71 scenes; ~16 text tokens before <image> (system turn),
    # ~30 after (question + turn markers, reference protocol), 48-token answers (issue 12)
    project_7b(per_scene=4675 / 71, prefix_text=16, suffix=30, answer=48, batch=8)
    if args.project_only:
        return

    import torch
    from rich.console import Console
    from ross3d_model.demo import DemoConfig, prepare_data

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    data = prepare_data(DemoConfig(out=work / "demo", scenes=2), Console(quiet=True), reuse=True)
    shards = work / "shards"
    shutil.rmtree(shards, ignore_errors=True)
    shutil.copytree(data["shards"], shards)
    added = add_questions(shards, args.questions)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads; "
          f"{added} ScanQA questions added ({args.questions} per clip), "
          f"{args.new_tokens} new tokens per answer")  # fmt: skip
    for config in args.configs:
        bench_config(config, work, shards, args.new_tokens)


if __name__ == "__main__":
    main()
