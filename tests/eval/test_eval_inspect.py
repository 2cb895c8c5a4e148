"""``ross3d-eval inspect``: per scene one Rerun recording with each item's GT and predicted boxes
(coloured by IoU), its texts and scores, read back with Rerun's own reader."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from evalfiles import interval_box, write_json
from ross3d_eval.cli import app
from ross3d_eval.harness import score
from ross3d_eval.inspect import GREEN, RED, YELLOW, hit_color, inspect_predictions
from ross3d_eval.synthetic import make_synthetic
from typer.testing import CliRunner

pytest.importorskip("rerun")
runner = CliRunner()
STATIC = -1


def read_recording(path: Path) -> dict[str, dict[int, dict[str, list]]]:
    """``{entity: {item step (STATIC for static data): {column: row}}}``; rows logged at the
    same step are merged (Rerun may split one log call's components over chunks)."""
    from rerun.chunk import RrdReader

    out: dict[str, dict[int, dict[str, list]]] = defaultdict(lambda: defaultdict(dict))
    for chunk in RrdReader(path).stream():
        batch = chunk.to_record_batch()
        steps = [STATIC] * batch.num_rows if chunk.is_static else batch.column("item").to_pylist()
        for name in batch.schema.names:
            if ":" in name:
                for step, value in zip(steps, batch.column(name).to_pylist(), strict=True):
                    if value is not None:
                        out[chunk.entity_path][step][name] = value
    return out


def rgba(rgb: tuple[int, int, int]) -> int:
    r, g, b = rgb
    return (r << 24) | (g << 16) | (b << 8) | 0xFF


def test_scanrefer_items_have_hand_computed_colours_texts_and_the_scene_boxes(
    scanrefer_files, tmp_path
):
    # IoUs: s0 items 1, 1/3, 0, missing; s1 item 0.5 (tests/eval/conftest.py)
    paths = inspect_predictions("scanrefer", scanrefer_files["predictions"],
                                scanrefer_files["annotations"], scanrefer_files["boxes"],
                                tmp_path)  # fmt: skip
    assert paths == [tmp_path / "s0.rrd", tmp_path / "s1.rrd"]
    s0 = read_recording(tmp_path / "s0.rrd")
    assert sorted(s0["/item"]) == [0, 1, 2, 3]
    pred = s0["/world/prediction"]
    assert [pred[i]["Boxes3D:colors"] for i in range(3)] == [[rgba(GREEN)], [rgba(YELLOW)],
                                                             [rgba(RED)]]  # fmt: skip
    assert pred[3] == {"Clear:is_recursive": [False]}  # no prediction: the last box is cleared
    np.testing.assert_allclose(pred[1]["Boxes3D:centers"], [[7.0, 0, 0]])
    np.testing.assert_allclose(s0["/world/target"][1]["Boxes3D:half_sizes"], [[0.5, 0.5, 0.5]])
    texts = [s0["/item"][i]["TextDocument:text"][0] for i in range(4)]
    assert "IoU 0.333" in texts[1] and "Acc@0.25 yes" in texts[1] and "Acc@0.5 no" in texts[1]
    assert "target: table #2" in texts[1] and "**failed**" in texts[1]
    assert "**passed**" in texts[0] and "none (scored as wrong)" in texts[3]
    objects = s0["/world/objects"][STATIC]
    assert objects["Boxes3D:labels"] == ["#0", "#1", "#2"]
    assert "/world/mesh" not in s0  # no --scenes: boxes and text only
    s1 = read_recording(tmp_path / "s1.rrd")
    assert s1["/world/prediction"][0]["Boxes3D:colors"] == [rgba(GREEN)]  # IoU 0.5 exactly


def test_only_failures_and_limit(scanrefer_files, tmp_path):
    files = [scanrefer_files[k] for k in ("predictions", "annotations", "boxes")]
    paths = inspect_predictions("scanrefer", *files, tmp_path / "f", only_failures=True)
    assert paths == [tmp_path / "f" / "s0.rrd"]  # s1's only item has IoU 0.5: passed
    assert sorted(read_recording(paths[0])["/item"]) == [0, 1, 2]
    paths = inspect_predictions("scanrefer", *files, tmp_path / "l", limit=2)
    assert paths == [tmp_path / "l" / "s0.rrd"]
    texts = read_recording(paths[0])["/item"]
    assert sorted(texts) == [0, 1] and "s0/2/0" in texts[1][("TextDocument:text")][0]
    assert inspect_predictions("scanrefer", *files, tmp_path / "n", only_failures=True,
                               limit=1) == [tmp_path / "n" / "s0.rrd"]  # fmt: skip


def test_multi3drefer_per_item_f1_averages_to_the_scorer(tmp_path):
    files = make_synthetic(tmp_path / "m3d", "multi3drefer", n=40, seed=1)
    paths = inspect_predictions("multi3drefer", files["predictions"], files["annotations"],
                                files["boxes"], tmp_path / "out")  # fmt: skip
    assert [p.name for p in paths] == ["scene0000_00.rrd", "scene0001_00.rrd"]
    f1 = {0.25: [], 0.5: []}
    n_items = 0
    for path in paths:
        rec = read_recording(path)
        n_items += len(rec["/item"])
        for step, row in rec["/item"].items():
            text = row["TextDocument:text"][0]
            for k in f1:
                f1[k].append(float(text.split(f"F1@{k} ")[1].split(",")[0].split("\n")[0]))
            targets = int(text.split(" targets)")[0].rsplit(", ", 1)[1])
            got = rec["/world/target"][step]
            assert len(got.get("Boxes3D:centers", [])) == targets
    assert n_items == 40
    result = score("multi3drefer", files["predictions"], files["annotations"], boxes=files["boxes"])
    for k, values in f1.items():
        # the text rounds each F1 to 3 decimals: the mean is within 0.0005 (x100)
        assert np.mean(values) * 100 == pytest.approx(result.metrics[f"F1@{k}"], abs=0.05)


def test_qa_and_captions_show_question_prediction_and_references(tmp_path):
    qa = make_synthetic(tmp_path / "qa", "scanqa", n=12)
    paths = inspect_predictions("scanqa", qa["predictions"], qa["annotations"], None,
                                tmp_path / "qa-out")  # fmt: skip
    assert [p.name for p in paths] == ["scene0000_00.rrd", "scene0001_00.rrd"]
    text = read_recording(paths[0])["/item"][0]["TextDocument:text"][0]
    ann = json.loads(Path(qa["annotations"]).read_text())[0]
    assert ann["question"] in text and all(a in text for a in ann["answers"])
    cap = make_synthetic(tmp_path / "cap", "scan2cap", n=5)
    (path,) = inspect_predictions("scan2cap", cap["predictions"], cap["annotations"], cap["boxes"],
                                  tmp_path / "cap-out")  # fmt: skip
    rec = read_recording(path)
    assert len(rec["/item"]) == 5
    first = rec["/item"][0]["TextDocument:text"][0]
    assert (
        "describe object #0" in first
        and "**references**" in first
        and "caption counts@0.5" in first
    )


def test_a_scannet_mesh_is_shown_under_its_axis_alignment(scanrefer_files, tmp_path):
    scene = tmp_path / "scans" / "s0"
    scene.mkdir(parents=True)
    ply = scene / "s0_vh_clean_2.ply"
    ply.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                   "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
                   "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")  # fmt: skip
    T = np.array([[0, -1, 0, 2], [1, 0, 0, -1], [0, 0, 1, 0.5], [0, 0, 0, 1]], float)
    (scene / "s0.txt").write_text("sceneType = Office\naxisAlignment = "
                                  + " ".join(str(v) for v in T.ravel()) + "\n")  # fmt: skip
    files = [scanrefer_files[k] for k in ("predictions", "annotations", "boxes")]
    inspect_predictions("scanrefer", *files, tmp_path / "out", scenes=tmp_path / "scans")
    s0 = read_recording(tmp_path / "out" / "s0.rrd")
    pose = s0["/world/mesh"][STATIC]
    np.testing.assert_allclose(pose["Transform3D:translation"][0], [2, -1, 0.5])
    np.testing.assert_allclose(np.reshape(pose["Transform3D:mat3x3"][0], (3, 3)).T, T[:3, :3])
    asset = s0["/world/mesh/scan"][STATIC]
    assert len(asset["Asset3D:blob"][0]) == ply.stat().st_size
    assert asset["Asset3D:media_type"] == ["application/x-ply"]
    s1 = read_recording(tmp_path / "out" / "s1.rrd")  # no mesh for s1: boxes and text only
    assert "/world/mesh" not in s1 and "/world/target" in s1


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_many_scenes_leave_no_recording_threads_behind(tmp_path):
    # rerun-sdk keeps 2 threads per closed stream until they are swept (measured before the
    # sweep: +2 threads and ~1.2 MB per recording)
    files = make_synthetic(tmp_path / "sr", "scanrefer", n=600)
    threads = len(list(Path("/proc/self/task").iterdir()))
    paths = inspect_predictions("scanrefer", files["predictions"], files["annotations"],
                                files["boxes"], tmp_path / "out")  # fmt: skip
    assert len(paths) == 30
    assert len(list(Path("/proc/self/task").iterdir())) <= threads + 8


def test_hit_colour_thresholds():
    assert [hit_color(v) for v in (1.0, 0.5, 0.4999, 0.25, 0.2499, 0.0)] == [
        GREEN, GREEN, YELLOW, YELLOW, RED, RED]  # fmt: skip


def test_cli_writes_recordings_and_refuses_bad_input_in_one_line(scanrefer_files, tmp_path):
    args = ["inspect", "--benchmark", "scanrefer", "--predictions",
            str(scanrefer_files["predictions"]), "--annotations",
            str(scanrefer_files["annotations"]), "--out", str(tmp_path / "o")]  # fmt: skip
    result = runner.invoke(app, [*args, "--boxes", str(scanrefer_files["boxes"]),
                                 "--only-failures", "--limit", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"wrote {tmp_path / 'o' / 's0.rrd'}"]
    assert sorted(read_recording(tmp_path / "o" / "s0.rrd")["/item"]) == [0, 1]
    result = runner.invoke(app, args)  # no --boxes
    assert result.exit_code == 2 and result.stderr.strip() == "error: scanrefer needs --boxes"
    bad = write_json(tmp_path / "bad.json", {"s0": {"0": interval_box(0, 1)}})
    result = runner.invoke(app, [*args, "--boxes", str(bad)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "bad.json" in result.stderr and "object 2" in result.stderr
    sqa = make_synthetic(tmp_path / "sqa", "sqa3d", n=3)
    result = runner.invoke(app, ["inspect", "--benchmark", "sqa3d", "--predictions",
                                 str(sqa["predictions"]), "--annotations", str(sqa["annotations"]),
                                 "--out", str(tmp_path / "q")])  # fmt: skip
    assert result.exit_code == 2 and "sqa3d needs --questions" in result.stderr
