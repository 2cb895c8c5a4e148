"""`ross3d-model check-init` without network: one row per pretrained part with its status,
no hub call when offline (HF_HUB_OFFLINE or a failed probe), local paths never sent to the hub,
`--json` always prints its object, exit 1 iff a part or a tensor is not loadable. Checkpoints
are tiny local files in the public key layouts (reference_fixtures.py)."""

from __future__ import annotations

import json
import socket
import time

import huggingface_hub
import pytest
from reference_fixtures import random_state, released_ross3d_keys, write_safetensors
from ross3d_model.cli import app
from ross3d_model.configuration.model import Ross3DConfig
from ross3d_model.weights.availability import HubAccess
from ross3d_model.weights.build import check_init
from ross3d_model.weights.checkpoint import resolve_checkpoint
from typer.testing import CliRunner

PARTS = (
    "tokenizer",
    "init_from",
    "vision.pretrained",
    "llm.pretrained",
    "vae.pretrained",
    "reconstruction.pretrained_denoiser",
)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty hub cache, the working directory in tmp_path, and any hub call or socket
    connection an error (so a test passing proves none was made)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access: {args[:1]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", refuse)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    monkeypatch.setattr(huggingface_hub, "parse_safetensors_file_metadata", refuse)


def _rows(report: dict) -> dict[str, dict]:
    return {row["part"]: row for row in report["parts"]}


def test_7b_offline_is_fast_and_lists_every_part(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["check-init", "--model-config", "7b", "--json"])
    elapsed = time.perf_counter() - start
    assert elapsed < 15, elapsed  # the bound is 30 s (it took 137 s of retries)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    rows = _rows(report)
    assert tuple(rows) == PARTS
    assert report["ok"] is False
    assert report["hub"] == {"online": False, "reason": "HF_HUB_OFFLINE is set", "token": False}
    statuses = {part: row["status"] for part, row in rows.items()}
    assert statuses == {
        "tokenizer": "unreachable",
        "init_from": "unreachable",
        "vision.pretrained": "unreachable",  # init_from does not provide it: opened on its own
        "llm.pretrained": "not set",
        "vae.pretrained": "unreachable",  # gated FLUX.1-dev: not even asked offline
        "reconstruction.pretrained_denoiser": "local file absent",
    }
    assert rows["init_from"]["source"] == "lmms-lab/LLaVA-Video-7B-Qwen2"
    assert rows["llm.pretrained"]["detail"] == "its weights: init_from"
    denoiser = rows["reconstruction.pretrained_denoiser"]
    assert str(tmp_path) in denoiser["detail"]  # says what the relative path is relative to
    assert [row["loadable"] for row in rows.values()] == [False, False, False, True, False, False]


def test_failed_probe_means_offline_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls = []

    def unreachable(address, timeout=None):
        calls.append(address)
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    hub = HubAccess.detect()
    assert not hub.online and hub.reason.endswith("Name or service not known")
    host = huggingface_hub.constants.ENDPOINT.split("://")[1].split("/")[0].split(":")[0]
    assert len(calls) == 1 and calls[0][0] == host  # one probe, nothing more
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")  # the client's route
    assert not HubAccess.detect().online and calls[-1] == ("proxy.example", 3128)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert HubAccess.detect().reason == "HF_HUB_OFFLINE is set" and len(calls) == 2


def test_local_files_found_and_hub_parts_offline(no_network, tiny_cfg, tmp_path):
    """init_from a released-layout folder, the denoiser a relative path that exists, the VAE a
    hub id offline: the VAE row is unreachable, the others found with their tensor counts,
    and no VAE tensor is compared (a stand-in VAE skeleton)."""
    data = tiny_cfg.to_dict()
    data["llm"].update(vocab_size=514, added_token_rows=2)
    cfg = Ross3DConfig.from_dict(data)
    state = random_state(released_ross3d_keys(cfg), seed=3)
    write_safetensors(state, tmp_path / "ross3d")
    data["init_from"] = "ross3d"  # relative to the working directory (tmp_path)
    data["vae"]["pretrained"] = "black-forest-labs/FLUX.1-dev"
    report = check_init(Ross3DConfig.from_dict(data), hub=HubAccess(False, "test"))
    rows = {row.part: row for row in report.parts}
    assert (rows["init_from"].status, rows["init_from"].where) == ("found", "local")
    assert rows["init_from"].tensors == len(state) + 4 * cfg.reconstruction.depth
    assert rows["vae.pretrained"].status == "unreachable"
    assert rows["tokenizer"].status == "not set"
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    assert not report.ok  # the VAE is not loadable


def test_a_local_file_absent_is_never_a_hub_id(no_network, tiny_cfg):
    data = tiny_cfg.to_dict()
    data["reconstruction"]["pretrained_denoiser"] = "checkpoints/mm_inv_projector.bin"
    data["init_from"] = "weights/ross3d/release"  # two slashes: a path, not org/name
    report = check_init(Ross3DConfig.from_dict(data), hub=HubAccess(True))  # "online"
    rows = {row.part: row.status for row in report.parts}
    assert rows["reconstruction.pretrained_denoiser"] == "local file absent"
    assert rows["init_from"] == "local file absent"
    with pytest.raises(ValueError, match="a local path: not looked up on the hub"):
        resolve_checkpoint("checkpoints/mm_inv_projector.bin")


def _hub_error(cls, status: int):
    err = cls.__new__(cls)
    Exception.__init__(err, f"{status} Client Error")
    err.response = type("Response", (), {"status_code": status})()
    return err


@pytest.mark.parametrize(
    ("error", "token", "status"),
    [
        ("GatedRepoError", False, "needs a token"),
        ("GatedRepoError", True, "needs a token"),
        ("RepositoryNotFoundError", False, "needs a token"),
        ("RepositoryNotFoundError", True, "missing"),
        ("EntryNotFoundError", True, "missing"),
        ("HfHubHTTPError", False, "needs a token"),
    ],
)
def test_hub_errors_name_a_status(no_network, tiny_cfg, monkeypatch, error, token, status):
    cls = getattr(huggingface_hub.errors, error)

    def list_repo_files(self, repo_id, **kwargs):
        raise _hub_error(cls, 401)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    data = tiny_cfg.to_dict()
    data["init_from"] = "org/private-model"
    report = check_init(Ross3DConfig.from_dict(data), hub=HubAccess(True, token=token))
    (row,) = [row for row in report.parts if row.part == "init_from"]
    assert (row.status, row.loadable, report.ok) == (status, False, False)
    assert "org/private-model" in row.detail


def test_hub_cache_snapshot_is_found_offline(no_network, tiny_cfg, tmp_path):
    """A repo in the hub cache layout (refs/main -> snapshots/<commit>) is found offline."""
    data = tiny_cfg.to_dict()
    data["llm"].update(vocab_size=514, added_token_rows=2)
    state = random_state(released_ross3d_keys(Ross3DConfig.from_dict(data)), seed=3)
    repo = tmp_path / "hub" / "models--org--ross3d"
    write_safetensors(state, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    data["init_from"] = "org/ross3d"
    report = check_init(Ross3DConfig.from_dict(data), hub=HubAccess(False, "test"))
    (row,) = [row for row in report.parts if row.part == "init_from"]
    assert (row.status, row.where) == ("found", "hub cache")
    assert report.ok, report.to_json()


def test_json_is_printed_on_errors_too(tmp_path):
    result = CliRunner().invoke(
        app, ["check-init", "--model-config", str(tmp_path / "none.json"), "--json"]
    )
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False and "none.json" in report["error"]


def test_tiny_config_is_ok_and_the_table_has_its_rows(tmp_path):
    result = CliRunner().invoke(app, ["check-init", "--model-config", "tiny"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "hub: offline: no hub id in the config"
    assert [line.split()[0] for line in lines[2:] if not line.startswith(" ")][:6] == list(PARTS)
    assert lines[-1] == "OK"
