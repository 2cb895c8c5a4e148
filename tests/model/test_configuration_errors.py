"""Config errors are one line naming the file (an unknown key lists its section's valid keys, a
wrong type names the key and the type expected), and docs/configuration.md is generated from
the config dataclasses and current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ross3d_model.cli import app
from ross3d_model.configuration import Ross3DConfig, RunConfig, load_config, load_run_config
from ross3d_model.configuration.docs import REGENERATE, render
from ross3d_model.configuration.schema import field_docs, matches, type_name
from typer.testing import CliRunner

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
TRAIN_KEYS = [
    "max_steps",
    "epochs",
    "micro_batch_size",
    "global_batch_size",
    "grad_accum",
    "lr",
]  # fmt: skip  (the first of train's keys, in declaration order)


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_the_committed_doc_is_current():
    assert DOC.read_text() == render(), f"docs/configuration.md is stale: run {REGENERATE}"


@pytest.mark.parametrize("cls", [RunConfig, Ross3DConfig])
def test_every_key_is_documented(cls):
    docs = field_docs(cls)
    assert [d.key for d in docs if not d.meaning] == []
    text = DOC.read_text()
    assert all(f"| `{d.key}` | {d.type} | `{d.default}` |" in text for d in docs)


def test_documented_rows_have_known_answers():
    rows = {d.key: d for d in field_docs(RunConfig)}
    assert (rows["train.lr"].type, rows["train.lr"].default) == ("a number", "1e-05")
    assert rows["train.max_steps"].type == "an integer or null"
    assert rows["data.tasks"].type == "a list of strings or null"
    model_rows = {d.key: d for d in field_docs(Ross3DConfig)}
    assert model_rows["position.min_xyz"].type == "a list of 3 numbers"
    assert model_rows["position.min_xyz"].default == "[-15.0, -15.0, -5.0]"
    assert model_rows["vision.select_layer"].meaning.startswith("hidden_states[-2]")


def test_an_unknown_run_key_lists_the_valid_keys_once_per_file(tmp_path):
    path = _write(tmp_path, "r.json", {"base": "tiny", "trian": {"lr": 1e-5}})
    with pytest.raises(ValueError) as err:
        load_run_config(path)
    (line,) = str(err.value).splitlines()
    assert line.startswith(f"{path}: unknown keys ['trian'] at the top level; ")
    assert "valid top-level keys: model, train, data" in line and line.count(str(path)) == 1
    path = _write(tmp_path, "s.json", {"base": "tiny", "train": {"lrr": 1e-5}})
    with pytest.raises(
        ValueError, match=r"unknown keys \['lrr'\] in train; valid keys of train: "
    ) as err:
        load_run_config(path)
    assert ", ".join(TRAIN_KEYS) in str(err.value)


def test_a_quoted_number_names_the_key_and_the_type(tmp_path):
    path = _write(tmp_path, "r.json", {"base": "tiny", "train": {"lr": "1e-5"}})
    with pytest.raises(ValueError) as err:
        load_run_config(path)
    assert str(err.value) == f'{path}: train.lr must be a number, got "1e-5" (a string)'
    path = _write(tmp_path, "e.json", {"base": "tiny", "train": {"epochs": True}})
    with pytest.raises(
        ValueError, match=r"train\.epochs must be an integer, got true \(a boolean\)"
    ):
        load_run_config(path)
    path = _write(tmp_path, "m.json", {"base": "tiny", "position": {"min_xyz": [1, 2]}})
    with pytest.raises(ValueError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}: position.min_xyz must be a list of 3 numbers, got [1, 2] (a list)"
    )
    path = _write(tmp_path, "n.json", {"base": "tiny", "vision": {"hidden_size": "64"}})
    with pytest.raises(ValueError, match=r'vision\.hidden_size must be an integer, got "64"'):
        load_config(path)


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    model = _write(tmp_path, "m.json", {"base": "tiny", "vison": {}})
    r = runner.invoke(app, ["check-init", "--model-config", str(model)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"error: {model}: unknown keys ['vison'] at the top level; ")
    assert "vision, projector, llm, tokens" in line
    run = _write(tmp_path, "r.json", {"base": "tiny", "train": {"lr": "1e-5"}})
    r = runner.invoke(app, ["train", "--config", str(run), "--dry-run", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.splitlines() == [
        f'error: {run}: train.lr must be a number, got "1e-5" (a string)'
    ]


def test_type_checks_and_names():
    assert matches(3, float) and not matches(True, int) and not matches("3", float)
    assert matches([1, 2.5], tuple[float, float]) and not matches([1], tuple[float, float])
    assert matches({"scannet": None, "arkitscenes": 0.2}, dict[str, float | None])
    assert not matches({"scannet": "0.2"}, dict[str, float | None])
    assert type_name(dict[str, float | None] | None) == "an object of (numbers or null) or null"
    assert type_name(tuple[float, ...]) == "a list of numbers"


@pytest.mark.parametrize("name", ["tiny", "mid", "7b", "7b-plus"])
def test_shipped_model_configs_round_trip(name):
    cfg = load_config(name)
    assert Ross3DConfig.from_dict(cfg.to_dict()) == cfg
    assert Ross3DConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
