import dataclasses
import json

import pytest
from ross3d_model.configuration.run import (
    DataConfig,
    RunConfig,
    TrainConfig,
    check_deepspeed_config,
    load_deepspeed_config,
    load_run_config,
    steps_per_epoch,
)
from ross3d_model.training.engine import resolve_deepspeed_config


def test_shipped_run_configs_load_and_name_real_model_configs():
    from ross3d_model.configuration.model import load_config

    tiny, big = load_run_config("tiny"), load_run_config("7b")
    assert tiny.train.deepspeed is None and not tiny.train.bf16
    assert big.train.deepspeed == "zero3" and big.train.bf16 and big.train.gradient_checkpointing
    # REFERENCE 3: global batch 256 = 1 x 32 x 8, lr 1e-5, warm-up 3 % of one epoch.
    assert big.train.global_batch_size == 256 and big.train.grad_accum is None
    assert big.train.for_world(8).grad_accum == 32 and big.train.for_world(16).grad_accum == 16
    # max_steps is derived from the data at run start (870 on the recipe's: test_config.py)
    assert big.train.lr == 1e-5 and big.train.max_steps is None
    assert dataclasses.replace(big.train, max_steps=870).warmup_steps == 27
    with pytest.raises(ValueError, match="max_steps is null"):
        _ = big.train.warmup_steps
    assert load_config(tiny.model).llm.hidden_size == 64
    assert load_config(big.model).llm.hidden_size == 3584


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_steps", 0, "max_steps"),
        ("max_steps", True, "max_steps"),
        ("epochs", 0, "epochs"),
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


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero3_hpz"])
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
    assert out["zero_optimization"]["stage"] == int(name[4])
    if name.startswith("zero3"):
        assert out["zero_optimization"]["stage3_param_persistence_threshold"] == 80
    assert "auto" not in json.dumps(out)
    assert ds["bf16"]["enabled"] == "auto"  # the loaded dict is not modified
    # hierarchical partitioning (docs/training.md): a second bf16 copy within each 8-GPU node
    assert out["zero_optimization"].get("zero_hpz_partition_size", 1) == (
        8 if name == "zero3_hpz" else 1
    )


def test_deepspeed_config_contradicting_the_run_is_refused():
    ds = load_deepspeed_config("zero2")
    ds["gradient_accumulation_steps"] = 5
    with pytest.raises(ValueError, match="contradicts"):
        resolve_deepspeed_config(ds, RunConfig(), world_size=1, hidden_size=8)
    ds = load_deepspeed_config("zero2")
    ds["scheduler"] = {"type": "WarmupLR"}
    with pytest.raises(ValueError, match="scheduler"):
        resolve_deepspeed_config(ds, RunConfig(), world_size=1, hidden_size=8)


@pytest.mark.parametrize(
    ("key", "literal", "message"),
    [
        (("optimizer", "params", "lr"), 3e-4, "optimizer.params.lr=0.0003 contradicts the run's "
         "train.lr=1e-05"),
        (("optimizer", "params", "weight_decay"), 0.1, "optimizer.params.weight_decay=0.1 "
         "contradicts the run's train.weight_decay=0.0"),
        (("optimizer", "params", "betas"), [0.9, 0.95], "optimizer.params.betas=[0.9, 0.95] "
         "contradicts the run's train.adam_betas=[0.9, 0.999]"),
        (("gradient_clipping",), 0.5, "gradient_clipping=0.5 contradicts the run's "
         "train.max_grad_norm=1.0"),
        (("train_micro_batch_size_per_gpu",), 4, "train_micro_batch_size_per_gpu=4 contradicts "
         "the run's train.micro_batch_size=1"),
        (("bf16", "enabled"), False, "bf16.enabled=False contradicts the run's train.bf16=True"),
        (("train_batch_size",), 64, "train_batch_size=64 contradicts the run's "
         "train.micro_batch_size x accumulation x world size 8=256"),
    ],
)  # fmt: skip
def test_a_deepspeed_literal_that_contradicts_the_run_is_refused(key, literal, message):
    """A literal in the DeepSpeed JSON used to win silently over the run config's value."""
    train = TrainConfig(micro_batch_size=1, grad_accum=32, lr=1e-5, bf16=True)
    ds = load_deepspeed_config("zero3")
    node = ds
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = literal
    with pytest.raises(ValueError, match="contradicts") as err:
        check_deepspeed_config(ds, train, world_size=8)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="contradicts"):
        resolve_deepspeed_config(ds, RunConfig(train=train), world_size=8, hidden_size=8)
    node[key[-1]] = "auto" if key != ("bf16", "enabled") else True  # the run's value is fine
    check_deepspeed_config(ds, train, world_size=8)


def test_a_contradicting_deepspeed_file_is_refused_when_the_run_config_loads(tmp_path):
    ds = load_deepspeed_config("zero2")
    ds["gradient_clipping"] = 0.3
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(ds))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"base": "7b", "train": {"deepspeed": str(path)}}))
    with pytest.raises(ValueError, match=r"gradient_clipping=0.3 contradicts .*max_grad_norm=1.0"):
        load_run_config(run)
    ds["gradient_clipping"] = 1.0  # a literal equal to the run's value is fine
    path.write_text(json.dumps(ds))
    assert load_run_config(run).train.deepspeed == str(path)


def test_steps_per_epoch_of_the_documented_recipe_counts():
    """REFERENCE 3: SQA3D 79,445 + ScanQA 26,515 (QA), Scan2Cap 36,665, ScanRefer 36,665 +
    Multi3DRefer 43,838 (grounding) at global batch 256: task-grouped 413 + 143 + 314 = 870;
    one permutation of all 223,128: 871 (docs/benchmarks.md, bench_order.py)."""
    counts = {"qa": 79_445 + 26_515, "caption": 36_665, "grounding": 36_665 + 43_838}
    assert steps_per_epoch(counts, 256, group_by_task=True) == 870
    assert steps_per_epoch(counts, 256, group_by_task=False) == 871
    with pytest.raises(ValueError, match="global batch"):
        steps_per_epoch(counts, 0, group_by_task=True)


@pytest.mark.parametrize("group_by_task", [True, False])
def test_steps_per_epoch_is_the_length_of_the_epoch_order(group_by_task):
    from ross3d_data.shards.sampling import epoch_order

    groups = ["qa"] * 30 + ["caption"] * 30 + ["vision"] * 5  # G 16: 1 + 1 + 0 grouped; 65 // 16
    order = epoch_order(groups, seed=0, epoch=0, global_batch=16, group_by_task=group_by_task)
    expected = 2 if group_by_task else 4
    counts = {"qa": 30, "caption": 30, "vision": 5}
    assert len(order) // 16 == steps_per_epoch(counts, 16, group_by_task) == expected


def test_null_max_steps_is_derived_from_the_task_and_reported_by_the_dry_run(
    demo_data, tmp_path, capsys
):
    from ross3d_model.training.task import build_task, with_derived_steps, write_data_order

    data = DataConfig(group_by_task=True)
    run = RunConfig(train=TrainConfig(max_steps=None, epochs=3, micro_batch_size=1), data=data)
    task = build_task(run, demo_data["shards"], world_size=2)
    per_epoch = len(task.epoch_items(0)) // 2
    assert per_epoch >= 1 and task.steps_per_epoch() == per_epoch
    derived = with_derived_steps(run, task)
    assert derived.train.max_steps == 3 * per_epoch and run.train.max_steps is None
    explicit = dataclasses.replace(run, train=dataclasses.replace(run.train, max_steps=999))
    assert with_derived_steps(explicit, task) is explicit
    capsys.readouterr()
    write_data_order(explicit, tmp_path, shards=demo_data["shards"], world_size=2)
    note = " ".join(capsys.readouterr().err.split())
    assert f"max_steps 999 (run config) != {per_epoch} steps in one epoch of this data" in note
    write_data_order(run, tmp_path, shards=demo_data["shards"], world_size=2)
    note = " ".join(capsys.readouterr().err.split())
    assert f"3 epoch(s) x {per_epoch} steps = {3 * per_epoch}" in note


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


def test_relative_pretrained_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    from ross3d_model.configuration.model import load_config

    folder = tmp_path / "cfgs"
    (folder / "ckpt").mkdir(parents=True)
    (folder / "ckpt" / "denoiser.bin").write_bytes(b"x")
    model = {"base": "tiny", "reconstruction": {"pretrained_denoiser": "ckpt/denoiser.bin"},
             "vae": {"pretrained": "black-forest-labs/FLUX.1-dev"},
             "tokenizer": "./tok"}  # fmt: skip
    (folder / "model.json").write_text(json.dumps(model))
    (folder / "run.json").write_text(json.dumps({"model": "model.json"}))
    monkeypatch.chdir(tmp_path)  # another working directory than the configs'
    run = load_run_config(folder / "run.json")
    assert run.model == str(folder / "model.json")
    cfg = load_config(run.model)
    assert cfg.reconstruction.pretrained_denoiser == str(folder / "ckpt" / "denoiser.bin")
    assert cfg.tokenizer == str(folder / "tok")  # explicit ./ even when missing
    assert cfg.vae.pretrained == "black-forest-labs/FLUX.1-dev"  # a hub id is kept
    # the shipped 7b keeps its working-directory-relative denoiser path
    assert (
        load_config("7b").reconstruction.pretrained_denoiser == "checkpoints/mm_inv_projector.bin"
    )


def test_pretrained_sources_say_what_this_node_has(tmp_path, monkeypatch):
    """What the ranks compare before the model is built: a local file by absolute path and
    size, a hub id by its cached revision (or "not cached"), a missing local path as missing."""
    import huggingface_hub.constants
    from ross3d_model.configuration.model import load_config
    from ross3d_model.training.task import pretrained_sources

    (tmp_path / "denoiser.bin").write_bytes(b"12345")
    refs = tmp_path / "hub" / "models--org--llava" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("abc123\n")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg = load_config("tiny")
    cfg = dataclasses.replace(
        cfg, init_from="org/llava", tokenizer="org/other",
        reconstruction=dataclasses.replace(cfg.reconstruction,
                                           pretrained_denoiser=str(tmp_path / "denoiser.bin")),
        vae=dataclasses.replace(cfg.vae, pretrained=str(tmp_path / "absent")),
    )  # fmt: skip
    assert pretrained_sources(cfg) == {
        "init_from": "hub org/llava @ abc123",
        "tokenizer": "hub org/other not cached",
        "vae.pretrained": f"{tmp_path / 'absent'} missing",
        "reconstruction.pretrained_denoiser": f"{tmp_path / 'denoiser.bin'} (5 bytes)",
    }
