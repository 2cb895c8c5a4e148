"""One CLI vocabulary across ross3d-data, ross3d-model and ross3d-eval (docs/cli.md): choices
typer enforces and lists, the old spellings as hidden aliases with a deprecation note, one
error path (one red line on stderr, exit 2, no traceback), messages on stderr.

Model commands are run in process with their library function replaced by a recorder, so the
test sees exactly what the CLI passed on without building a model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from readme_commands import documented_commands
from ross3d_benchmarks import SPLITS, TASKS
from ross3d_data.cli import app as data_app
from ross3d_eval.cli import app as eval_app
from ross3d_model.cli import app as model_app
from typer.testing import CliRunner

runner = CliRunner()


def _flat(text: str) -> str:
    """Output without whitespace and rich's box borders (error boxes wrap long lists)."""
    return "".join(c for c in text if not c.isspace() and c not in "│╭╮╰╯─")


def _deprecations(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "is deprecated; use" in line]


def test_choices_are_the_libraries_own():
    from ross3d_data import cli as data_cli
    from ross3d_data import mesh_io
    from ross3d_data.bev.grid import BACKENDS
    from ross3d_data.cache.patch_masks import PATCH_DEPTH_RULES
    from ross3d_data.views.selection import VIEW_METHODS
    from ross3d_model import cli as model_cli
    from ross3d_model.inference import predict

    assert data_cli.VIEW_METHODS == VIEW_METHODS
    assert data_cli.BEV_BACKENDS == BACKENDS
    assert data_cli.PATCH_DEPTHS == PATCH_DEPTH_RULES
    assert data_cli.UP_AXES == mesh_io.UP_AXES
    assert model_cli.INFERENCE_PROTOCOLS == predict.PROTOCOLS
    assert ("auto", *predict.DTYPES) == model_cli.DTYPES


def _q(values) -> list[str]:
    return [f"'{v}'" for v in values]


PREDICT = ["predict", "--checkpoint", "c", "--out", "o", "--shards", "s"]
CHOICES = [
    (data_app, ["render-bev", "s", "--out", "o", "--backend", "vulkan"],
     _q(("jit", "raster", "open3d"))),
    (data_app, ["preview", "s", "--out", "o", "--method", "best"], _q(("uniform", "max-coverage"))),
    (data_app, ["build-shards", "s", "--out", "o", "--method", "best"],
     _q(("uniform", "max-coverage"))),
    (data_app, ["convert-instructions", "--split", "val", "--out", "o", "--benchmark", "qa"],
     _q(TASKS)),
    (data_app, ["convert-instructions", "--split", "val", "--out", "o", "--task", "qa"], _q(TASKS)),
    (data_app, ["convert-instructions", "--out", "o", "--split", "dev"], _q(SPLITS)),
    (data_app, ["cache-clips", "--shards", "s", "--patch-depth", "some"], _q(("any", "valid"))),
    (data_app, ["build-shards", "s", "--out", "o", "--engine", "spark"], _q(("local", "ray"))),
    (data_app, ["render-bev", "s", "--out", "o", "--engine", "dask"], _q(("local", "ray"))),
    (data_app, ["import-mesh", "m.ply", "s", "--up", "x"], _q(("auto", "z", "y"))),
    (data_app, ["export-mesh", "s", "--out", "o.ply", "--source", "points"], _q(("mesh", "fused"))),
    (model_app, [*PREDICT, "--benchmark", "qa"], _q(TASKS)),
    (model_app, [*PREDICT, "--benchmark", "scanqa", "--split", "dev"], _q(SPLITS)),
    (model_app, [*PREDICT, "--benchmark", "scanqa", "--inference-protocol", "leo"],
     _q(("reference", "ours"))),
    (model_app, [*PREDICT, "--benchmark", "scanqa", "--dtype", "fp8"], _q(("auto", "bf16", "fp16", "fp32"))),
    (model_app, [*PREDICT, "--benchmark", "scanqa", "--device", "tpu"],
     _q(("auto", "cpu", "cuda", "cuda:N"))),
    (model_app, ["cache-latents", "--config", "tiny", "--device", "gpu"],
     _q(("auto", "cpu", "cuda", "cuda:N"))),
    (eval_app, ["score", "--predictions", "p", "--annotations", "a", "--benchmark", "qa"],
     _q(TASKS)),
    (eval_app, ["score", "--predictions", "p", "--annotations", "a", "--protocol", "paper"],
     _q(("ross3d", "leo", "official"))),
]  # fmt: skip


@pytest.mark.parametrize(
    ("app", "args", "choices"), CHOICES, ids=[" ".join(args) for _, args, _ in CHOICES]
)
def test_a_bad_choice_is_refused_and_the_choices_are_listed(app, args, choices):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert f"'{args[-1]}'isnotoneof{','.join(choices)}" in _flat(r.stderr)
    assert "Traceback" not in r.output and r.stdout == ""


def test_hidden_aliases_stay_out_of_help():
    for app, command, old in (
        (data_app, "make-demo", ["--n-scenes", "--n-frames", "OUT"]),
        (data_app, "convert-instructions", ["--task", "--input"]),
        (data_app, "cache-clips", ["SHARDS"]),
        (model_app, "train", ["--output-dir"]),
        (model_app, "predict", ["--boxes", "--protocol "]),
        (model_app, "check-init", ["MODEL_CONFIG"]),
        (eval_app, "score", ["BENCHMARK"]),
    ):
        text = runner.invoke(app, [command, "--help"]).output
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert usage.split() == ["Usage:", app.info.name or "root", command, "[OPTIONS]"]
        assert not [name for name in old if name.startswith("-") and name in text], text


@pytest.fixture
def recorded(monkeypatch):
    """Replace the library functions the model commands call by recorders of their arguments."""
    import ross3d_model.demo
    import ross3d_model.inference.predict as predict
    import ross3d_model.inputs.caches as caches
    import ross3d_model.training.task as task

    calls: dict[str, list] = {"predict": [], "latents": [], "order": [], "demo": []}

    def run_predict(cfg, progress=None, show_progress=False, notice=None):
        calls["predict"].append(cfg)
        return [predict.PredictSummary(b, cfg.out, items=5, skipped_existing=5)
                for b in cfg.benchmarks]  # fmt: skip

    def cache_latents(folder, vae, kind, batch_size, device):
        calls["latents"].append((kind, device))
        return Path(folder) / f"{kind}.h5"

    def write_data_order(run, out, shards, world_size):
        calls["order"].append(out)
        return Path(out) / "data_order.jsonl"

    def run_demo(cfg, console):
        calls["demo"].append(cfg)
        return SimpleNamespace(report="r.md", scores={}, metrics="m.jsonl")

    monkeypatch.setattr(predict, "run_predict", run_predict)
    monkeypatch.setattr(caches, "cache_latents", cache_latents)
    monkeypatch.setattr(task, "write_data_order", write_data_order)
    monkeypatch.setattr(ross3d_model.demo, "run_demo", run_demo)
    return calls


def test_model_old_spellings_still_work_with_a_deprecation_note(recorded, tmp_path):
    proposals = tmp_path / "proposals.json"
    proposals.write_text("{}")
    args = [*PREDICT, "--benchmark", "scanrefer", "--device", "cpu"]
    r = runner.invoke(model_app, [*args, "--boxes", str(proposals), "--protocol", "ours"])
    assert r.exit_code == 0, r.output
    assert _deprecations(r) == [
        "note: --boxes is deprecated; use --proposals",
        "note: --protocol is deprecated; use --inference-protocol",
    ]
    (cfg,) = recorded["predict"]
    assert (cfg.boxes, cfg.protocol, cfg.benchmarks) == (proposals, "ours", ["scanrefer"])

    r = runner.invoke(model_app, ["train", "--config", "tiny", "--shards", str(tmp_path),
                                  "--output-dir", str(tmp_path / "run"), "--dry-run"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert _deprecations(r) == ["note: --output-dir is deprecated; use --out"]
    assert recorded["order"] == [tmp_path / "run"]

    r = runner.invoke(model_app, ["demo", "--out", str(tmp_path / "d"), "--scenes", "4"])
    assert r.exit_code == 0, r.output
    assert _deprecations(r) == ["note: --scenes is deprecated; use --num-scenes"]
    assert recorded["demo"][0].scenes == 4

    args = ["cache-latents", "--config", "tiny", "--shards", str(tmp_path), "--device", "cpu"]
    r = runner.invoke(model_app, [*args, "--views"])
    assert r.exit_code == 0, r.output
    assert _deprecations(r) == ["note: --views is deprecated; use --view-latents"]
    assert recorded["latents"] == [("bev_latents", "cpu"), ("view_latents", "cpu")]

    for command, old in (("check-init", "MODEL_CONFIG"), ("export", "CHECKPOINT")):
        missing = tmp_path / f"no-{command}"
        extra = ["--out", str(tmp_path / "x")] if command == "export" else []
        r = runner.invoke(model_app, [command, str(missing), *extra])
        assert r.exit_code == 2  # the positional value reached the library, which refused it
        (note, error) = r.stderr.splitlines()
        assert note.startswith(f"note: the positional {old} is deprecated; use --")
        assert error.startswith(f"error: {missing}") and r.stdout == ""


def test_model_new_spellings_and_defaults(recorded, tmp_path):
    args = [*PREDICT, "--benchmark", "scanqa", "--benchmark", "sqa3d", "--out", "p/{benchmark}"]
    r = runner.invoke(model_app, [*args, "--device", "cpu", "--dtype", "fp32"])
    assert r.exit_code == 0, r.output
    assert _deprecations(r) == []
    (cfg,) = recorded["predict"]
    assert (cfg.benchmarks, cfg.device, cfg.dtype, cfg.protocol) == (
        ["scanqa", "sqa3d"],
        "cpu",
        "fp32",
        "reference",
    )
    # every item was already in --out: a successful no-op that says so
    assert r.stderr.splitlines()[-1] == (
        "already predicted: 10 items, nothing to do (delete --out to predict again)"
    )
    r = runner.invoke(model_app, ["cache-latents", "--config", "tiny", "--shards", str(tmp_path)])
    assert r.exit_code == 0, r.output
    import torch

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert recorded["latents"] == [("bev_latents", auto)]  # --device auto by default


def test_missing_required_option_and_errors_are_one_line_on_stderr(tmp_path):
    r = runner.invoke(model_app, ["check-init"])
    assert (r.exit_code, r.stderr, r.stdout) == (2, "error: missing option --model-config\n", "")
    r = runner.invoke(model_app, ["check-init", "--model-config", str(tmp_path / "m.json")])
    assert r.exit_code == 2 and r.stdout == "" and "Traceback" not in r.output
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / 'm.json'}: ")
    r = runner.invoke(eval_app, ["score", "--predictions", "p", "--annotations", "a"])
    assert (r.exit_code, r.stderr) == (2, "error: missing option --benchmark\n")


def test_cli_app_error_path():
    """Expected errors: one line naming the file, exit 2; a bug keeps its traceback."""
    import typer
    from ross3d_benchmarks.cli import CliApp
    from ross3d_data.core.errors import SceneError

    app = CliApp(expected=(SceneError,))
    raised: dict[str, BaseException] = {
        "missing": FileNotFoundError(2, "No such file or directory", "a/b.json"),
        "scene": SceneError(Path("s/x.ply"), "truncated\nat byte 12"),
        "bug": KeyError("k"),
    }

    @app.command()
    def run(what: str) -> None:
        raise raised[what]

    @app.command()
    def ok() -> None:
        typer.echo("product")

    r = runner.invoke(app, ["run", "missing"])
    assert (r.exit_code, r.stderr) == (2, "error: a/b.json: No such file or directory\n")
    r = runner.invoke(app, ["run", "scene"])
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1
    assert "s/x.ply" in r.stderr and "truncated at byte 12" in r.stderr
    r = runner.invoke(app, ["run", "bug"])
    assert r.exit_code == 1 and isinstance(r.exception, KeyError)
    assert runner.invoke(app, ["ok"]).stdout == "product\n"


def test_every_documented_command_line_parses_without_deprecation():
    import typer

    apps = {"ross3d-data": data_app, "ross3d-model": model_app, "ross3d-eval": eval_app}
    commands = documented_commands()
    assert len(commands) >= 20
    for name, tool, (command, *args) in commands:
        click_command = typer.main.get_command(apps[tool]).commands[command]
        try:
            ctx = click_command.make_context(command, list(args))
        except Exception as err:  # an unknown option or a bad value: name the line
            pytest.fail(f"{name}: `{tool} {command} {' '.join(args)}`: {err}")
        hidden = {p.name for p in click_command.params if getattr(p, "hidden", False)}
        used = {k for k, v in ctx.params.items() if k in hidden and v not in (None, False)}
        assert not used, (name, tool, command, args, used)
