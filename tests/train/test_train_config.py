import json

import pytest
from ross3d_model.configuration.run import (
    RunConfig,
    TrainConfig,
    load_deepspeed_config,
    load_run_config,
)
from ross3d_model.training.engine import resolve_deepspeed_config


def test_shipped_run_configs_load_and_name_real_model_configs():
    from ross3d_model.configuration.model import load_config

    tiny, big = load_run_config("tiny"), load_run_config("7b")
    assert tiny.train.deepspeed is None and not tiny.train.bf16
    assert big.train.deepspeed == "zero3" and big.train.bf16 and big.train.gradient_checkpointing
    # REFERENCE 3: global batch 256 = 1 x 32 x 8, lr 1e-5, warm-up 3 % of one epoch.
    assert big.train.micro_batch_size * big.train.grad_accum * 8 == 256
    assert big.train.lr == 1e-5 and big.train.warmup_steps == 27
    assert load_config(tiny.model).llm.hidden_size == 64
    assert load_config(big.model).llm.hidden_size == 3584


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_steps", 0, "max_steps"),
        ("lr", -1.0, "lr"),
        ("warmup_ratio", 1.0, "warmup_ratio"),
        ("deepspeed", "zero9", "no such DeepSpeed config"),
        ("adam_betas", (0.9,), "adam_betas"),
    ],
)
def test_train_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_run_config_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": "tiny", "train": {"max_step": 3}}))
    with pytest.raises(ValueError, match=r"run\.json.*unknown keys \['max_step'\]"):
        load_run_config(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read run config"):
        load_run_config(path)
    with pytest.raises(ValueError, match="no such run config"):
        load_run_config(tmp_path / "missing.json")


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_shipped_deepspeed_configs_resolve_every_auto(name):
    ds = load_deepspeed_config(name)
    assert ds["optimizer"]["params"]["torch_adam"] is True  # no FusedAdam compile on CPU
    assert ds["bf16"]["enabled"] == "auto"
    run = RunConfig(train=TrainConfig(micro_batch_size=2, grad_accum=3, lr=2e-4, bf16=True))
    out = resolve_deepspeed_config(ds, run, world_size=4, hidden_size=8)
    assert out["train_batch_size"] == 2 * 3 * 4
    assert out["train_micro_batch_size_per_gpu"] == 2 and out["gradient_accumulation_steps"] == 3
    assert out["bf16"]["enabled"] is True
    assert out["optimizer"]["params"]["lr"] == 2e-4
    assert out["zero_optimization"]["stage"] == int(name[-1])
    if name == "zero3":
        assert out["zero_optimization"]["stage3_param_persistence_threshold"] == 80
    assert "auto" not in json.dumps(out)
    assert ds["bf16"]["enabled"] == "auto"  # the loaded dict is not modified


def test_deepspeed_config_contradicting_the_run_is_refused():
    ds = load_deepspeed_config("zero2")
    ds["gradient_accumulation_steps"] = 5
    with pytest.raises(ValueError, match="contradicts"):
        resolve_deepspeed_config(ds, RunConfig(), world_size=1, hidden_size=8)
    ds = load_deepspeed_config("zero2")
    ds["scheduler"] = {"type": "WarmupLR"}
    with pytest.raises(ValueError, match="scheduler"):
        resolve_deepspeed_config(ds, RunConfig(), world_size=1, hidden_size=8)


def test_checkpoints_incomplete_ones_are_ignored_and_pruned(tmp_path):
    from ross3d_model.training import checkpointing as ckpt

    for step in (2, 4, 6):
        path = ckpt.checkpoint_dir(tmp_path, step)
        path.mkdir(parents=True)
        ckpt.write_state(path, {"step": step})
        ckpt.mark_complete(path)
    ckpt.checkpoint_dir(tmp_path, 8).mkdir()  # killed while saving: no COMPLETE marker
    assert ckpt.latest_checkpoint(tmp_path)[0] == 6
    removed = ckpt.prune(tmp_path, keep=2)
    assert removed == [ckpt.checkpoint_dir(tmp_path, 2)]
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [4, 6]
    assert ckpt.checkpoint_dir(tmp_path, 8).is_dir()  # newer than the newest complete: kept
    (ckpt.checkpoint_dir(tmp_path, 6) / ckpt.STATE_FILE).write_text("{}")
    with pytest.raises(ValueError, match=r"trainer_state\.json"):
        ckpt.read_state(ckpt.checkpoint_dir(tmp_path, 6))


def test_train_cli_errors_are_clear(tmp_path):
    from ross3d_model.cli import app
    from typer.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", "tiny", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no shards" in result.output
    result = runner.invoke(app, ["train", "--config", "nope", "--shards", str(tmp_path)])
    assert result.exit_code == 2 and "no such run config" in result.output
