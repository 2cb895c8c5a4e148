"""Converters: tiny hand-written files in each official format -> expected instructions."""

import json

import numpy as np
import pytest
from ross3d_data.instructions import (
    ConvertConfig,
    Instruction,
    convert_instructions,
    multi3drefer,
    read_boxes_json,
    read_jsonl,
    scan2cap,
    scanqa,
    scanrefer,
    sqa3d,
    summary_table,
    write_boxes_json,
)

BOXES = {
    "scene0000_00": {1: [0.0, 0.0, 0.5, 1.0, 1.0, 1.0], 2: [2.0, 0.0, 0.5, 0.5, 0.5, 1.0]},
    "scene0001_00": {7: [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]},
}


def test_scanqa_rows_and_malformed_rows_are_counted():
    rows = [
        {
            "question_id": "train-scene0000-0",
            "scene_id": "scene0000_00",
            "question": "What is next to the table?",
            "answers": ["chair", "a chair"],
            "object_ids": [2],
            "object_names": ["chair"],
        },
        {"question_id": "train-scene0000-1", "scene_id": "scene0000_00", "question": "Where?"},
        {
            "question_id": "train-scene0000-2",
            "scene_id": "scene0000_00",
            "question": "Which?",
            "answers": ["x"],
            "object_ids": [99],
        },
        "not a row",
    ]
    r = scanqa.convert(rows, "train", BOXES)
    assert r.rows == 4
    # train: one sample per (question, answer), as Ross3D process_scanqa.py (26,515 samples)
    assert [i.id for i in r.instructions] == [
        "scanqa/train/train-scene0000-0/0",
        "scanqa/train/train-scene0000-0/1",
    ]
    assert [i.answers for i in r.instructions] == [["chair"], ["a chair"]]
    inst = r.instructions[0]
    assert inst.prompt == "What is next to the table? Answer the question simply."
    assert inst.object_ids == [2] and inst.boxes == [[2.0, 0.0, 0.5, 0.5, 0.5, 1.0]]
    assert all(i.eval == {"question_id": "train-scene0000-0"} for i in r.instructions)
    val = scanqa.convert(rows[:1], "val", BOXES).instructions
    assert [(i.id, i.answers) for i in val] == [
        ("scanqa/val/train-scene0000-0", ["chair", "a chair"])
    ]
    assert r.skipped == {
        "missing 'answers'": 1,
        "object_id not in scene": 1,
        "missing 'question_id'": 1,
    }


def test_scanqa_test_split_needs_no_answers():
    rows = [{"question_id": "test-scene0001-0", "scene_id": "scene0001_00", "question": "Q?"}]
    r = scanqa.convert(rows, "test")
    assert r.instructions[0].answers == [] and r.instructions[0].boxes == []


def _sqa_files():
    questions = {
        "questions": [
            {
                "question_id": 220602000000,
                "scene_id": "scene0000_00",
                "question": "What color is the desk?",
                "situation": "I face the window.",
                "alternative_situation": ["I look outside.", "  "],
            },
            {
                "question_id": 220602000001,
                "scene_id": "scene0000_00",
                "question": "Can I sit?",
                "situation": "I stand by the bed.",
                "alternative_situation": [],
            },
        ]
    }
    annotations = {
        "annotations": [
            {
                "question_id": 220602000000,
                "scene_id": "scene0000_00",
                "answers": [{"answer": "brown", "answer_confidence": "yes", "answer_id": 1}],
            },
            {"question_id": 220602000001, "scene_id": "scene0000_00", "answers": []},
            {"question_id": 5, "scene_id": "scene0000_00", "answers": [{"answer": "no"}]},
        ]
    }
    return questions, annotations


def test_sqa3d_join_types_and_situation_expansion():
    questions, annotations = _sqa_files()
    train = sqa3d.convert(annotations, questions, "train", text="cleaned")
    assert [i.id for i in train.instructions] == [
        "sqa3d/train/220602000000",
        "sqa3d/train/220602000000/1",
    ]
    assert train.instructions[1].prompt == (
        "I look outside. What color is the desk? Answer the question using a single word or phrase."
    )
    assert train.instructions[0].eval == {
        "question_id": 220602000000,
        "situation": "I face the window.",
        "question_type": "what",
    }
    assert train.skipped == {"missing 'answers'": 1, "question_id not in questions file": 1}
    val = sqa3d.convert(annotations, questions, "val")
    assert len(val.instructions) == 1 and val.instructions[0].answers == ["brown"]


def test_sqa3d_text_is_the_published_conversions_by_default():
    """process_sqa3d.py lines 37-45: f"<image> {situation_txt} {ques['question']} Answer ..."
    with the text verbatim and every alternative situation, an empty one included."""
    questions, annotations = _sqa_files()
    q = questions["questions"][0]
    q["situation"], q["question"] = " I face the window.", "What color is the desk? "
    train = sqa3d.convert(annotations, questions, "train")
    tail = "What color is the desk?  Answer the question using a single word or phrase."
    assert [i.prompt for i in train.instructions] == [
        f" I face the window. {tail}",
        f"I look outside. {tail}",
        f"   {tail}",  # the alternative "  ", as f"{situation_txt} {question}" writes it
    ]
    assert train.instructions[0].eval["situation"] == " I face the window."
    cleaned = sqa3d.convert(annotations, questions, "train", text="cleaned")
    assert cleaned.instructions[0].prompt == (
        "I face the window. What color is the desk? Answer the question using a single word or "
        "phrase."
    )
    with pytest.raises(ValueError, match="text rule"):
        sqa3d.convert(annotations, questions, "train", text="strip")


def _scanrefer_rows():
    return [
        {
            "scene_id": "scene0000_00",
            "object_id": "1",
            "object_name": "table",
            "ann_id": "0",
            "description": "a brown table in the middle.",
        },
        {
            "scene_id": "scene0000_00",
            "object_id": "1",
            "object_name": "table",
            "ann_id": "1",
            "description": "the table near the chair.",
        },
        {
            "scene_id": "scene0000_00",
            "object_id": "2",
            "object_name": "office_chair",
            "ann_id": "0",
            "description": "a chair.",
        },
        {
            "scene_id": "scene0000_00",
            "object_id": "9",
            "object_name": "office chair",
            "ann_id": "0",
            "description": "another chair.",
        },
        {
            "scene_id": "scene0000_00",
            "object_id": "x",
            "object_name": "lamp",
            "ann_id": "0",
            "description": "bad id.",
        },
    ]


def test_scanrefer_eval_type_and_boxes():
    r = scanrefer.convert(_scanrefer_rows(), "val", BOXES)
    ids = [i.id for i in r.instructions]
    assert ids == [
        "scanrefer/val/scene0000_00/1/0",
        "scanrefer/val/scene0000_00/1/1",
        "scanrefer/val/scene0000_00/2/0",
    ]
    first = r.instructions[0]
    assert first.prompt == (
        "Identify the object according to the following description.\nA brown table in the middle."
    )
    assert first.answers == [] and first.boxes == [BOXES["scene0000_00"][1]]
    assert first.eval == {
        "ann_id": 0,
        "object_id": 1,
        "object_name": "table",
        "eval_type": "unique",
    }
    # chairs 2 and 9 share a normalised name -> multiple
    assert r.instructions[2].eval["eval_type"] == "multiple"
    assert r.skipped == {"object_id not in scene": 1, "bad 'object_id' (not an integer: 'x')": 1}


def test_scan2cap_val_one_per_object_with_all_references():
    r = scan2cap.convert(_scanrefer_rows()[:3], "val", BOXES)
    assert [i.id for i in r.instructions] == [
        "scan2cap/val/scene0000_00/1",
        "scan2cap/val/scene0000_00/2",
    ]
    assert r.instructions[0].answers == [
        "a brown table in the middle.",
        "the table near the chair.",
    ]
    assert (
        r.instructions[0].prompt
        == "Given an object located at <coord> , describe the object in detail."
    )
    assert r.instructions[0].eval["object_id"] == 1
    train = scan2cap.convert(_scanrefer_rows()[:3], "train", BOXES)
    assert len(train.instructions) == 3 and train.instructions[1].answers == [
        "The table near the chair."
    ]


def test_multi3drefer_zero_and_multi_target():
    rows = [
        {
            "scene_id": "scene0000_00",
            "ann_id": 0,
            "object_name": "chair",
            "description": "the chairs.",
            "object_ids": [1, 2],
            "eval_type": "mt",
        },
        {
            "scene_id": "scene0000_00",
            "ann_id": 1,
            "object_name": "sofa",
            "description": "a sofa.",
            "object_ids": [],
            "eval_type": "zt_wo_d",
        },
        {
            "scene_id": "scene0000_00",
            "ann_id": 2,
            "object_name": "sofa",
            "description": "x",
            "object_ids": [],
            "eval_type": "st_w_d",
        },
        {
            "scene_id": "scene0000_00",
            "ann_id": 3,
            "object_name": "sofa",
            "description": "x",
            "object_ids": [1],
            "eval_type": "nope",
        },
    ]
    r = multi3drefer.convert(rows, "val", BOXES)
    assert [i.object_ids for i in r.instructions] == [[1, 2], []]
    assert len(r.instructions[0].boxes) == 2 and r.instructions[1].boxes == []
    assert r.instructions[1].eval == {"ann_id": 1, "eval_type": "zt_wo_d"}
    assert r.instructions[0].prompt.endswith(
        "There may be no corresponding object, or there may be one or more objects."
    )
    assert r.skipped == {"eval_type disagrees with object_ids": 1, "bad 'eval_type'": 1}


def test_convert_instructions_files_round_trip(tmp_path):
    questions, annotations = _sqa_files()
    (tmp_path / "q.json").write_text(json.dumps(questions))
    (tmp_path / "a.json").write_text(json.dumps(annotations))
    write_boxes_json(BOXES, tmp_path / "boxes.json")
    assert read_boxes_json(tmp_path / "boxes.json") == BOXES
    cfg = ConvertConfig(
        task="sqa3d",
        input=tmp_path / "a.json",
        questions=tmp_path / "q.json",
        split="val",
        out=tmp_path / "out" / "sqa.jsonl",
        boxes_json=tmp_path / "boxes.json",
    )
    result = convert_instructions(cfg)
    back = read_jsonl(cfg.out)
    assert back == result.instructions and len(back) == 1
    assert summary_table([result]).row_count == 1


def test_bad_config_and_files_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="sqa3d needs"):
        ConvertConfig(task="sqa3d", input=tmp_path / "a", split="val", out=tmp_path / "o")
    with pytest.raises(ValueError, match="unknown task"):
        ConvertConfig(task="nope", input=tmp_path / "a", split="val", out=tmp_path / "o")
    (tmp_path / "bad.json").write_text("{not json")
    cfg = ConvertConfig(task="scanqa", input=tmp_path / "bad.json", split="val", out=tmp_path / "o")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        convert_instructions(cfg)
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        read_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match="box"):
        Instruction(
            id="a",
            scene_id="s",
            task="scanrefer",
            split="val",
            prompt="p",
            object_ids=[1],
            boxes=[[0.0, 1.0]],
        )


def test_convert_instructions_cli(tmp_path):
    from ross3d_data.cli import app
    from typer.testing import CliRunner

    rows = [{"question_id": "val-scene0000-0", "scene_id": "scene0000_00", "question": "Q?",
             "answers": ["a"], "object_ids": [1]}, {"question_id": "val-scene0000-1"}]  # fmt: skip
    (tmp_path / "ScanQA_v1.0_val.json").write_text(json.dumps(rows))
    write_boxes_json(BOXES, tmp_path / "boxes.json")
    args = ["convert-instructions", "--task", "scanqa", "--input",
            str(tmp_path / "ScanQA_v1.0_val.json"), "--split", "val", "--out",
            str(tmp_path / "o.jsonl"), "--boxes", str(tmp_path / "boxes.json")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert [i.id for i in read_jsonl(tmp_path / "o.jsonl")] == ["scanqa/val/val-scene0000-0"]
    assert "missing 'scene_id': 1" in res.output
    res = CliRunner().invoke(app, [*args[:-2], "--split", "nope"])
    assert res.exit_code == 2 and "'nope' is not one of" in res.output


def test_scanrefer_unique_multiple_with_the_18_scanrefer_classes(tmp_path):
    # ScanRefer lib/dataset.py _get_raw2label: raw category (column 1) -> nyu40class (column 7),
    # kept when one of the 18 ScanRefer classes, else "others"
    tsv = tmp_path / "scannetv2-labels.combined.tsv"
    header = "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\n"
    tsv.write_text(header + "1\tchair\tchair\t9\t5\t4\tchair\tchair\n"
                   "2\toffice chair\tchair\t3\t5\t4\tchair\tchair\n"
                   "3\ttable\ttable\t4\t7\t6\ttable\ttable\n"
                   "4\tpiano\tpiano\t1\t39\t7\tpiano\totherfurniture\n"
                   "5\twall\twall\t1\t1\t12\twall\twall\n")  # fmt: skip
    label_map = scanrefer.read_label_map(tsv)
    rows = [
        {"scene_id": "s", "object_id": "2", "object_name": "office_chair", "ann_id": "0",
         "description": "a chair."},
        {"scene_id": "s", "object_id": "9", "object_name": "chair", "ann_id": "0",
         "description": "a chair."},
        {"scene_id": "s", "object_id": "1", "object_name": "table", "ann_id": "0",
         "description": "a table."},
        {"scene_id": "s", "object_id": "4", "object_name": "piano", "ann_id": "0",
         "description": "a piano."},
        {"scene_id": "s", "object_id": "5", "object_name": "wall", "ann_id": "0",
         "description": "a wall."},
    ]  # fmt: skip
    by_map = [
        i.eval["eval_type"] for i in scanrefer.convert(rows, "val", None, label_map).instructions
    ]
    # chairs share "chair"; piano (otherfurniture) and wall are both "others"; table alone
    assert by_map == ["multiple", "multiple", "unique", "multiple", "multiple"]
    by_name = [i.eval["eval_type"] for i in scanrefer.convert(rows, "val").instructions]
    assert by_name == ["unique"] * 5  # raw names all differ
    (tmp_path / "bad.tsv").write_text("just one line\n")
    with pytest.raises(ValueError, match=r"bad\.tsv"):
        scanrefer.read_label_map(tmp_path / "bad.tsv")


def test_demo_annotations_follow_the_layout_and_convert_cleanly(demo_scenes, tmp_path):
    from ross3d_data.synthetic.annotations import PALETTE, write_demo_annotations
    from ross3d_data.synthetic.scenes import demo_layout

    files = write_demo_annotations(demo_scenes, tmp_path)
    first = sorted(demo_scenes)[0].name
    layout = demo_layout(0)
    qa = {r["question"]: r for r in json.loads(files["scanqa_train"].read_text())
          if r["scene_id"] == first}  # fmt: skip
    wardrobe = next(o for o in layout if o.label == "wardrobe")
    assert PALETTE[qa["What color is the wardrobe?"]["answers"][0]] == wardrobe.color_3
    assert qa["How many chairs are in the room?"]["answers"] == ["two"]
    assert sorted(qa["How many chairs are in the room?"]["object_ids"]) == [
        o.object_id for o in layout if o.label == "chair"]  # fmt: skip
    val = {r["question"]: r for r in json.loads(files["scanqa_val"].read_text())
           if r["scene_id"] == first}  # fmt: skip
    assert val["What is next to the table?"]["answers"] == ["chair"]
    boxes = read_boxes_json(files["boxes"])
    assert np.allclose(boxes[first][wardrobe.object_id], wardrobe.box_6, atol=0.02)
    for task in ("scanqa", "scanrefer", "scan2cap", "multi3drefer"):
        for split in ("train", "val"):
            key = f"{'scanrefer' if task == 'scan2cap' else task}_{split}"
            cfg = ConvertConfig(task=task, input=files[key], split=split,
                                out=tmp_path / f"{task}_{split}.jsonl", boxes_json=files["boxes"])  # fmt: skip
            r = convert_instructions(cfg)
            assert not r.skipped and r.instructions, (task, split)
    m3d = read_jsonl(tmp_path / "multi3drefer_val.jsonl")
    assert {i.eval["eval_type"] for i in m3d} >= {"zt_wo_d", "zt_w_d", "mt", "st_wo_d"}
    for split in ("train", "val"):
        cfg = ConvertConfig(task="sqa3d", input=files[f"sqa3d_annotations_{split}"],
                            questions=files[f"sqa3d_questions_{split}"], split=split,
                            out=tmp_path / f"sqa_{split}.jsonl")  # fmt: skip
        assert not convert_instructions(cfg).skipped


def test_descriptions_are_capitalised_as_the_public_conversion():
    """Ross3D process_scanrefer.py / process_multi3drefer.py / process_scan2cap.py apply Python's
    str.capitalize(): first letter upper, every other letter lower."""
    from ross3d_data.instructions.prompts import capitalize_description

    assert capitalize_description("the TV is on the wall. It is black.") == (
        "The tv is on the wall. it is black."
    )
    assert capitalize_description("  a chair ") == "A chair"


def _scanqa_val_rows(scene_ids):
    """ScanQA_v1.0_val.json rows (the published keys), two questions per scene."""
    return [
        {"question_id": f"val-{s[:9]}-{k}", "scene_id": s, "question": "What is it?",
         "answers": ["a chair"], "object_ids": [1], "object_names": ["chair"]}
        for s in scene_ids for k in range(2)
    ]  # fmt: skip


def _convert_cli(tmp_path, benchmark, rows, *options):
    from ross3d_data.cli import app
    from typer.testing import CliRunner

    path = tmp_path / "in.json"
    path.write_text(json.dumps(rows))
    args = ["convert-instructions", "--benchmark", benchmark, "--annotations", str(path),
            "--split", "val", "--out", str(tmp_path / "o.jsonl"), *options]  # fmt: skip
    return CliRunner().invoke(app, args)


def test_a_file_of_another_benchmark_is_one_line_naming_the_expected_keys(tmp_path):
    res = _convert_cli(tmp_path, "scanqa", _scanrefer_rows())
    assert res.exit_code == 2 and not (tmp_path / "o.jsonl").exists()
    assert res.stderr.splitlines() == [
        f"error: {tmp_path / 'in.json'}: not a ScanQA file: no row has the keys question_id, "
        "scene_id, question (its first row has: ann_id, description, object_id, object_name, "
        "scene_id); it looks like a ScanRefer or Scan2Cap file: pass --benchmark scanrefer or "
        "--benchmark scan2cap"
    ]
    m3d = [{"scene_id": "scene0000_00", "ann_id": 0, "object_name": "chair", "description": "x",
            "object_ids": [1], "eval_type": "st_w_d"}]  # fmt: skip
    res = _convert_cli(tmp_path, "scanrefer", m3d)
    assert res.exit_code == 2 and len(res.stderr.splitlines()) == 1
    assert "not a ScanRefer file: no row has the keys scene_id, object_id, object_name" in (
        res.stderr
    )
    assert res.stderr.rstrip().endswith("pass --benchmark multi3drefer")
    res = _convert_cli(tmp_path, "multi3drefer", _scanqa_val_rows(["scene0000_00"]))
    assert "it looks like a ScanQA file: pass --benchmark scanqa" in res.stderr
    res = _convert_cli(tmp_path, "scanqa", {"questions": []})
    assert res.stderr.rstrip().endswith(
        "expected a JSON list of rows, got dict; it looks like an SQA3D file: "
        "pass --benchmark sqa3d"
    )
    res = _convert_cli(tmp_path, "scanqa", [])
    assert res.exit_code == 2 and "an empty list, no ScanQA rows to convert" in res.stderr


def test_sqa3d_files_swapped_or_of_another_benchmark(tmp_path):
    questions, _ = _sqa_files()
    (tmp_path / "q.json").write_text(json.dumps(questions))
    res = _convert_cli(tmp_path, "sqa3d", questions, "--questions", str(tmp_path / "q.json"))
    assert res.exit_code == 2 and res.stderr.rstrip().endswith(
        "it is a questions file: pass it as --questions, the annotations as --annotations"
    )
    res = _convert_cli(tmp_path, "sqa3d", _scanqa_val_rows(["scene0000_00"]),
                       "--questions", str(tmp_path / "q.json"))  # fmt: skip
    assert res.exit_code == 2 and "pass --benchmark scanqa" in res.stderr


def test_zero_instructions_is_an_error_with_reasons_examples_and_absent_scenes(tmp_path):
    # the published val file against a box table of other scenes: every row is skipped
    write_boxes_json(BOXES, tmp_path / "boxes.json")
    scenes = [f"scene{n:04d}_00" for n in range(11, 18)]
    res = _convert_cli(tmp_path, "scanqa", _scanqa_val_rows(scenes),
                       "--boxes", str(tmp_path / "boxes.json"))  # fmt: skip
    assert res.exit_code == 2 and not (tmp_path / "o.jsonl").exists()
    assert res.stderr.splitlines() == [
        f"error: {tmp_path / 'in.json'}: 0 of 14 scanqa rows converted (scene not in box table: "
        "14 (e.g. val-scene0011-0, val-scene0011-1, val-scene0012-0)); 7 of its scenes "
        "(scene0011_00, scene0012_00, scene0013_00, scene0014_00, scene0015_00, ... (2 more)) "
        f"are not in --boxes {tmp_path / 'boxes.json'}: point it at the scene root that holds them"
    ]
    rows = _scanqa_val_rows(["scene0000_00"])
    for row in rows:
        del row["answers"]
    res = _convert_cli(tmp_path, "scanqa", rows, "--boxes", str(tmp_path / "boxes.json"))
    assert res.exit_code == 2 and res.stderr.rstrip().endswith(
        "0 of 2 scanqa rows converted (missing 'answers': 2 (e.g. val-scene0000-0, "
        "val-scene0000-1)); test files have no answers: pass --split test"
    )
    rows = _scanqa_val_rows(["scene0000_00"])
    for row in rows:
        row["object_ids"] = [5]  # scene0000_00 has objects 1 and 2 only
    res = _convert_cli(tmp_path, "scanqa", rows, "--boxes", str(tmp_path / "boxes.json"))
    assert res.exit_code == 2 and res.stderr.rstrip().endswith(
        f"(object_id not in scene: 2 (e.g. val-scene0000-0, val-scene0000-1)); the objects of "
        f"--boxes {tmp_path / 'boxes.json'} are not the ones annotated: use the scans (or their "
        "boxes.json) the benchmark was annotated on"
    )


def test_scenes_absent_from_the_box_table_are_a_warning_listing_them(tmp_path):
    write_boxes_json(BOXES, tmp_path / "boxes.json")
    rows = _scanqa_val_rows(["scene0000_00", "scene0011_00", "scene0012_00"])
    rows.append({"question_id": "val-scene0013-0", "scene_id": "scene0013_00",
                 "question": "Where?", "answers": ["here"], "object_ids": []})  # fmt: skip
    res = _convert_cli(tmp_path, "scanqa", rows, "--boxes", str(tmp_path / "boxes.json"))
    assert res.exit_code == 0, res.output
    # scene0013_00's question has no objects: converted (no boxes needed) but still listed
    assert [i.id for i in read_jsonl(tmp_path / "o.jsonl")] == [
        "scanqa/val/val-scene0000-0", "scanqa/val/val-scene0000-1", "scanqa/val/val-scene0013-0"
    ]  # fmt: skip
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: 3 scenes named in {tmp_path / 'in.json'} are not in --boxes "
        f"{tmp_path / 'boxes.json'} (4 rows skipped for it): scene0011_00, scene0012_00, "
        "scene0013_00"
    ]


def test_converting_without_boxes_warns_except_for_sqa3d(tmp_path):
    res = _convert_cli(tmp_path, "scanqa", _scanqa_val_rows(["scene0000_00"]))
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: no --scenes or --boxes: instructions keep object ids but have no boxes "
        "(grounding and Scan2Cap need them); pass --scenes SCENE_ROOT or --boxes boxes.json"
    ]
    assert read_jsonl(tmp_path / "o.jsonl")[0].boxes == []
    questions, annotations = _sqa_files()
    (tmp_path / "q.json").write_text(json.dumps(questions))
    res = _convert_cli(tmp_path, "sqa3d", annotations, "--questions", str(tmp_path / "q.json"))
    assert res.exit_code == 0 and "warning" not in res.stderr
