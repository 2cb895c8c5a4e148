"""The training loop on the toy task: exact resume, logging, schedule, DeepSpeed acceptance."""

import json
import math
import os
import signal

import pytest
import torch
from ross3d_model.configuration.run import RunConfig, TrainConfig
from ross3d_model.training import checkpointing as ckpt
from ross3d_model.training.metrics import TIMING_KEYS, read_metrics
from ross3d_model.training.trainer import train
from toy import ToyTask, toy_examples


def _run(deepspeed=None, steps=6, **kwargs) -> RunConfig:
    train_cfg = dict(
        max_steps=steps, micro_batch_size=2, grad_accum=2, lr=1e-2, save_every=3,
        warmup_ratio=0.2, deepspeed=deepspeed, keep_checkpoints=0,
    )  # fmt: skip
    train_cfg.update(kwargs)
    return RunConfig(model="toy", train=TrainConfig(**train_cfg))


class CrashingTask(ToyTask):
    """Dies while collating global micro-batch `crash_at` (mid-step, after a checkpoint)."""

    def __init__(self, examples, crash_at: int):
        super().__init__(examples)
        self.crash_at = crash_at
        self.calls = 0

    def collate(self, examples, seed):
        self.calls += 1
        if self.calls > self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        return super().collate(examples, seed)


def test_crash_then_resume_reproduces_the_uninterrupted_losses_exactly(tmp_path):
    examples = toy_examples(10)
    reference = train(_run(), ToyTask(examples), tmp_path / "ref", progress=False)
    # 2 micro-batches per step: crash inside step 5, after the step-3 checkpoint and step 4's log.
    with pytest.raises(KeyboardInterrupt):
        train(_run(), CrashingTask(examples, crash_at=9), tmp_path / "run", progress=False)
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3, 4]
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [3]
    with pytest.raises(ValueError, match="--resume"):
        train(_run(), ToyTask(examples), tmp_path / "run", progress=False)
    resumed = train(_run(), ToyTask(examples), tmp_path / "run", resume=True, progress=False)
    strip = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in resumed.records]
    expect = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in reference.records]
    assert strip == expect  # exact floats, steps 1-6, the killed step-4 record replaced
    assert resumed.curve_path.stat().st_size > 1000
    assert (resumed.export_dir / "toy.pt").is_file()


def test_records_have_named_losses_nulls_and_the_cosine_schedule(tmp_path):
    result = train(_run(steps=8), ToyTask(toy_examples(10)), tmp_path, progress=False)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records == result.records and len(records) == 8
    for r in records:
        assert {"step", "loss", "lm", "cross_view", "bev", "grounding", "lr"} <= set(r)
        # the toy task runs cross-view on even optimiser steps (0-based) only
        assert (r["cross_view"] is not None) == ((r["step"] - 1) % 2 == 0)
        assert r["samples"] == 4
    warmup = math.ceil(0.2 * 8)  # 2 steps of linear warm-up, then cosine to 0 at step 8
    for r in records:
        s = r["step"] - 1
        lam = s / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / 6))
        assert r["lr"] == pytest.approx(1e-2 * lam)
    # one micro-batch of the 10 toy examples per task type: every third is vision-only
    assert all(r["bev"] is not None for r in records)


def test_vision_only_batches_log_null_text_losses(tmp_path):
    vision_only = [e for e in toy_examples(12) if e["instruction"] is None]
    result = train(_run(steps=2), ToyTask(vision_only), tmp_path, progress=False)
    for r in result.records:
        assert r["lm"] is None and r["grounding"] is None and r["bev"] is not None
        assert r["loss"] == pytest.approx(r["bev"] + (r["cross_view"] or 0.0))
    line = (tmp_path / "metrics.jsonl").read_text().splitlines()[0]
    assert '"lm": null' in line and json.loads(line)["grounding"] is None


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_shipped_deepspeed_configs_train_and_resume_on_cpu(tmp_path, stage):
    """DeepSpeed (one process; the trainer sets the launcher variables) accepts the shipped
    config, gives the plain run's losses at every step (the toy task uses every head on every
    micro-batch: before that, ZeRO-3 re-applied a stale grounding gradient and its grounding
    loss after 2 updates read 0.039 against the plain 0.029), and resumes exactly."""
    examples = toy_examples(10)
    plain = train(_run(steps=4), ToyTask(examples), tmp_path / "plain", progress=False)
    ds = train(_run(stage, steps=4), ToyTask(examples), tmp_path / "ds", progress=False)
    for a, b in zip(plain.records, ds.records, strict=True):
        for key in ("loss", "lm", "cross_view", "bev", "grounding"):
            assert (a[key] is None) == (b[key] is None), key
            if a[key] is not None:
                assert b[key] == pytest.approx(a[key], rel=1e-5), (a["step"], key)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "ds")] == [3, 4]
    assert (ckpt.checkpoint_dir(tmp_path / "ds", 3) / "ds").is_dir()  # sharded DeepSpeed state
    # resume from step 3 into a copy: step 4 must match
    import shutil

    shutil.copytree(tmp_path / "ds", tmp_path / "ds2")
    shutil.rmtree(ckpt.checkpoint_dir(tmp_path / "ds2", 4))
    again = train(
        _run(stage, steps=4), ToyTask(examples), tmp_path / "ds2", resume=True, progress=False
    )
    assert again.records[-1]["loss"] == ds.records[-1]["loss"]
    assert again.records[-1]["lr"] == ds.records[-1]["lr"]


def test_resume_with_another_batch_layout_is_refused(tmp_path):
    examples = toy_examples(10)
    train(_run(steps=3), ToyTask(examples), tmp_path, progress=False)
    longer = _run(steps=5, grad_accum=1)
    with pytest.raises(ValueError, match=r"4 examples per step.*this run has 2"):
        train(longer, ToyTask(examples), tmp_path, resume=True, progress=False)


def test_metrics_log_truncates_a_killed_tail_and_names_corrupt_lines(tmp_path):
    from ross3d_model.training.metrics import MetricsLog, plot_loss_curves

    log = MetricsLog(tmp_path)
    base = {"loss": 1.0, "lm": None, "cross_view": None, "bev": 0.5, "grounding": None, "lr": 0.1}
    for step in range(1, 13):
        log.append({"step": step, **base, "bev": 1.0 / step})
    log.truncate_after(9)
    assert [r["step"] for r in read_metrics(log.path)] == list(range(1, 10))
    png = plot_loss_curves(read_metrics(log.path), tmp_path / "curve.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="lacks 'lr'"):
        log.append(
            {"step": 10, "loss": 1.0, "lm": None, "cross_view": None, "bev": 1, "grounding": None}
        )
    log.path.write_text(log.path.read_text() + "{oops\n")
    with pytest.raises(ValueError, match=r"metrics\.jsonl:10"):
        read_metrics(log.path)


def test_bf16_autocast_with_gradient_checkpointing_tracks_the_fp32_run(tmp_path):
    examples = toy_examples(10)
    fp32 = train(_run(steps=2), ToyTask(examples), tmp_path / "fp32", progress=False)
    bf16 = train(
        _run(steps=2, bf16=True, gradient_checkpointing=True),
        ToyTask(examples),
        tmp_path / "bf16",
        progress=False,
    )
    for a, b in zip(fp32.records, bf16.records, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=3e-2)


class FlakyTask(ToyTask):
    """Collating any micro-batch that holds one of `bad` scene ids raises, as a corrupt clip."""

    def __init__(self, examples, bad: set[str]):
        super().__init__(examples)
        self.bad = bad

    def collate(self, examples, seed):
        broken = [e["scene_id"] for e in examples if e["scene_id"] in self.bad]
        if broken:
            raise ValueError(f"cannot decode {broken}")
        return super().collate(examples, seed)


def test_a_micro_batch_that_fails_to_collate_is_skipped_counted_and_replaced(tmp_path):
    examples = toy_examples(10)
    run = _run(steps=3, max_bad_fraction=0.4)  # 3 steps x 2 micro-batches: 2 may be bad
    # 10 examples = 5 micro-batches an epoch; micro-batch 1 (examples 2, 3) is bad, so are 6
    # (the same examples in epoch 1): step 1 trains micro-batches 0 and 2, step 3 5 and 7
    result = train(run, FlakyTask(examples, {"toy002"}), tmp_path / "a", progress=False)
    assert [r["skipped_micro_batches"] for r in result.records] == [1, 0, 1]
    assert result.skipped_micro_batches == 2
    assert all(r["samples"] == 4 for r in result.records)
    state = ckpt.read_state(ckpt.checkpoint_dir(tmp_path / "a", 3))
    assert state["next_micro_batch"] == 8 and state["skipped_micro_batches"] == 2
    # micro-batches 1, 3 and 6 bad: 3 > 0.4 x 6 -> the run stops, naming the error
    with pytest.raises(ValueError, match=r"3 micro-batches skipped.*max_bad_fraction=0.4"):
        train(run, FlakyTask(examples, {"toy002", "toy006"}), tmp_path / "b", progress=False)


def test_resume_with_changed_data_is_refused(tmp_path):
    train(_run(steps=3), ToyTask(toy_examples(10)), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"toy:10 shard-manifest fingerprint.*this run has toy:12"):
        train(_run(steps=5), ToyTask(toy_examples(12)), tmp_path, resume=True, progress=False)


class NoBuildTask(ToyTask):
    """A task whose model must not be built (the refusal has to come first)."""

    def build_model(self, dtype=None):
        raise AssertionError("the model was built before the refusal")


def test_a_changed_max_steps_on_resume_is_refused_before_the_model_is_built(tmp_path):
    examples = toy_examples(10)
    train(_run(steps=3), ToyTask(examples), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"max_steps 3, this run has 5.*--allow-schedule-change"):
        train(_run(steps=5), NoBuildTask(examples), tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="4 examples per step"):  # layout: also before the build
        train(_run(steps=3, grad_accum=1), NoBuildTask(examples), tmp_path, resume=True)
    allowed = train(_run(steps=5), ToyTask(examples), tmp_path, resume=True, progress=False,
                    allow_schedule_change=True)  # fmt: skip
    assert [r["step"] for r in allowed.records] == [1, 2, 3, 4, 5]
    # the new schedule: warm-up ceil(0.2 x 5) = 1, step 5 uses the rate after 4 updates:
    # 1e-2 x 0.5 x (1 + cos(pi x (4 - 1) / (5 - 1)))
    assert allowed.records[-1]["lr"] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(0.75 * math.pi)))


class SignalledTask(ToyTask):
    """Sends `signum` to its own process while collating global micro-batch `at` (inline
    collation: prefetch 0), as a scheduler's preemption notice arriving mid-step."""

    def __init__(self, examples, at: int, signum):
        super().__init__(examples)
        self.at, self.signum, self.calls = at, signum, 0

    def collate(self, examples, seed):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), self.signum)
        return super().collate(examples, seed)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_finishes_the_step_checkpoints_and_resume_is_exact(tmp_path, signum):
    examples = toy_examples(10)
    reference = train(_run(prefetch=0), ToyTask(examples), tmp_path / "ref", progress=False)
    # 2 micro-batches per step: the signal arrives inside step 2, which still completes
    task = SignalledTask(examples, at=3, signum=signum)
    before = signal.getsignal(signum)
    stopped = train(_run(prefetch=0), task, tmp_path / "run", progress=False)
    assert signal.getsignal(signum) == before  # the previous handler is back
    assert stopped.stopped_by == signum.name and stopped.steps == 2
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [2]
    assert not stopped.export_dir.exists()  # no export of an unfinished run
    resumed = train(_run(prefetch=0), ToyTask(examples), tmp_path / "run", resume=True,
                    progress=False)  # fmt: skip
    strip = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in resumed.records]
    expect = [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in reference.records]
    assert strip == expect and resumed.stopped_by is None


def test_save_every_minutes_checkpoints_beside_save_every(tmp_path):
    run = _run(steps=3, save_every=100, save_every_minutes=1e-9)  # always due
    train(run, ToyTask(toy_examples(10)), tmp_path / "a", progress=False)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "a")] == [1, 2, 3]
    train(_run(steps=3, save_every=100), ToyTask(toy_examples(10)), tmp_path / "b", progress=False)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "b")] == [3]  # only the end


def test_plain_progress_lines_are_periodic_with_the_first_and_last_step():
    import io

    from ross3d_model.training.trainer import _plain_progress

    out = io.StringIO()
    advance = _plain_progress(start=2, total=6, every_s=3600, out=out)
    for _ in range(4):
        advance({"loss": 0.5, "lm": None, "lr": 1e-3})
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["3/6", "6/6"]
    assert "loss=0.5000" in lines[0] and "lm=" not in lines[0] and "lr=0.001" in lines[0]


class DtypeTask(ToyTask):
    def build_model(self, dtype=None):
        self.built_in = dtype
        return super().build_model(dtype)


def test_the_model_is_built_in_bf16_when_deepspeed_trains_in_bf16(tmp_path):
    from ross3d_model.training.trainer import build_dtype

    assert build_dtype(TrainConfig(bf16=True, deepspeed="zero2")) == torch.bfloat16
    assert build_dtype(TrainConfig(bf16=True)) is None  # plain: fp32 weights, bf16 autocast
    assert build_dtype(TrainConfig(deepspeed="zero2")) is None
    task = DtypeTask(toy_examples(10))
    train(_run("zero2", steps=1, bf16=True), task, tmp_path, progress=False)
    assert task.built_in == torch.bfloat16


def test_a_bf16_build_equals_the_fp32_build_cast_as_deepspeed_casts():
    """Building in bf16 (half the host memory at start-up) changes no value: the randomly
    initialised parts are drawn in float32 and cast, as DeepSpeed's bf16 cast the fp32-built
    model's parameters; buffers (rotary, position tables) stay float32 either way."""
    from ross3d_model.configuration.model import load_config
    from ross3d_model.weights.build import from_config

    cfg = load_config("tiny")
    torch.manual_seed(0)
    fp32 = from_config(cfg)
    torch.manual_seed(0)
    bf16 = from_config(cfg, dtype=torch.bfloat16)
    params = dict(bf16.named_parameters())
    assert {p.dtype for p in params.values()} == {torch.bfloat16}
    assert all(torch.equal(p.bfloat16(), params[k]) for k, p in fp32.named_parameters())
    buffers = dict(bf16.named_buffers())
    for name, buf in fp32.named_buffers():
        assert buffers[name].dtype == buf.dtype and torch.equal(buffers[name], buf), name
    assert any(b.dtype == torch.float32 for b in buffers.values())


def test_the_global_batch_sets_the_accumulation_and_the_saved_run_config_holds_both(tmp_path):
    """global_batch_size 8 at micro-batch 2 on one process: 4 micro-batches per step, 8
    samples per step, and OUT/run_config.json says so; a contradicting grad_accum is refused
    before anything is written."""
    run = _run(steps=2, grad_accum=None, global_batch_size=8)
    result = train(run, ToyTask(toy_examples(10)), tmp_path / "a", progress=False)
    assert [r["samples"] for r in result.records] == [8, 8]
    saved = json.loads((tmp_path / "a" / ckpt.RUN_CONFIG_FILE).read_text())["train"]
    assert (saved["global_batch_size"], saved["grad_accum"], saved["micro_batch_size"]) == (8, 4, 2)
    with pytest.raises(ValueError, match=r"global_batch_size 8 != .*grad_accum 2 x 1 processes"):
        train(_run(grad_accum=2, global_batch_size=8), ToyTask(toy_examples(10)), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_folder_that_never_reached_step_1_is_reused_and_a_trained_one_is_refused(tmp_path):
    # a first attempt that died before step 1 leaves only what the run writes up front
    (tmp_path / "run_config.json").write_text("{}")
    result = train(_run(steps=2), ToyTask(toy_examples(10)), tmp_path, progress=False)
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 2 == result.steps
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(_run(steps=2), ToyTask(toy_examples(10)), tmp_path, progress=False)
