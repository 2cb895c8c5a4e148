"""One definition of the benchmark rules, across the package boundary: what ross3d-data converts,
what ross3d-model predicts and what ross3d-eval scores agree (task names, prediction keys,
ScanRefer unique / multiple, boxes.json)."""

import json

import torch
from ross3d_benchmarks import GROUNDING_TASKS, TASKS, prediction_key
from ross3d_data.instructions import TASKS as DATA_TASKS
from ross3d_data.instructions import multi3drefer, scanqa, scanrefer, write_boxes_json
from ross3d_eval import BENCHMARKS
from ross3d_eval.inputs import read_json_list
from ross3d_eval.scorers import multi3drefer as eval_multi3drefer
from ross3d_eval.scorers import scanqa as eval_scanqa
from ross3d_eval.scorers import scanrefer as eval_scanrefer
from ross3d_model.configuration.run import TASKS as TRAIN_TASKS
from ross3d_model.inference.generation import _ground_record, _text_record
from ross3d_model.inference.predict import BENCHMARKS as PREDICT_BENCHMARKS
from ross3d_model.inference.predict import instruction_key
from ross3d_model.inputs.batch import collate_examples

SCENE = "scene0000_00"
BOXES = {
    SCENE: {
        1: [0.0, 0.0, 0.5, 1.0, 1.0, 1.0],
        2: [3.0, 0.0, 0.5, 1.0, 1.0, 1.0],
        3: [0.0, 3.0, 0.5, 2.0, 1.0, 1.0],
    }
}
TSV = (
    "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\n"
    "1\tchair\tchair\t9\t5\t4\tchair\tchair\n"
    "2\toffice chair\tchair\t3\t5\t4\tchair\tchair\n"
    "3\ttable\ttable\t4\t7\t6\ttable\ttable\n"
)


def test_task_names_are_one_tuple_everywhere():
    assert DATA_TASKS is TASKS and TRAIN_TASKS is TASKS
    assert BENCHMARKS is TASKS and tuple(PREDICT_BENCHMARKS) == TASKS
    assert set(GROUNDING_TASKS) < set(TASKS)


def _logits_for(index: int, k: int) -> torch.Tensor:
    logits = torch.zeros(k + 1)
    logits[index] = 10.0
    return logits


def test_scanrefer_data_model_eval_agree(tmp_path):
    """Data's eval_type (unique / multiple) is eval's; model's prediction of the GT box scores
    100 % in every split of ross3d-eval."""
    rows = [
        {"scene_id": SCENE, "object_id": "1", "object_name": "office_chair", "ann_id": "0",
         "description": "the office chair."},
        {"scene_id": SCENE, "object_id": "2", "object_name": "chair", "ann_id": "0",
         "description": "the other chair."},
        {"scene_id": SCENE, "object_id": "3", "object_name": "table", "ann_id": "4",
         "description": "the table."},
    ]  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(rows))
    (tmp_path / "labels.tsv").write_text(TSV)
    write_boxes_json(BOXES, tmp_path / "boxes.json")
    label_map = scanrefer.read_label_map(tmp_path / "labels.tsv")
    instructions = scanrefer.convert(rows, "val", BOXES, label_map).instructions
    eval_types = eval_scanrefer.derive_eval_types(read_json_list(tmp_path / "ann.json"), label_map)
    candidates = {"boxes": torch.tensor(list(BOXES[SCENE].values()))}
    preds = []
    for inst in (i.to_dict() for i in instructions):
        key = instruction_key(inst)
        assert inst["eval"]["eval_type"] == eval_types[key]
        target = list(BOXES[SCENE]).index(inst["object_ids"][0])
        record = _ground_record(inst, _logits_for(target, 3), candidates, SCENE, 0.4)
        assert prediction_key("scanrefer", record) == key
        preds.append(json.dumps(record) + "\n")
    assert [i.eval["eval_type"] for i in instructions] == ["multiple", "multiple", "unique"]
    (tmp_path / "pred.jsonl").write_text("".join(preds))
    result = eval_scanrefer.evaluate(
        tmp_path / "pred.jsonl", tmp_path / "ann.json", boxes=tmp_path / "boxes.json",
        label_map=tmp_path / "labels.tsv",
    )  # fmt: skip
    assert result.missing == 0
    assert result.metrics["Acc@0.5"] == result.metrics["unique@0.5"] == 100.0
    assert result.metrics["multiple@0.5"] == 100.0


def test_multi3drefer_data_model_eval_agree(tmp_path):
    rows = [
        {"scene_id": SCENE, "ann_id": 0, "object_name": "chair", "description": "the chairs",
         "object_ids": [1, 2], "eval_type": "mt"},
        {"scene_id": SCENE, "ann_id": 1, "object_name": "bed", "description": "a bed",
         "object_ids": [], "eval_type": "zt_wo_d"},
    ]  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(rows))
    write_boxes_json(BOXES, tmp_path / "boxes.json")
    candidates = {"boxes": torch.tensor(list(BOXES[SCENE].values()))}
    # chairs 0.45 + 0.45 reach the 0.5 threshold together; the zero-target query: the
    # zero-target wins the argmax -> no box (F1 1 iff nothing predicted)
    two = torch.tensor([0.45, 0.45, 0.02, 0.08]).log()
    none = torch.tensor([0.1, 0.1, 0.1, 0.7]).log()
    preds = []
    for inst, logits in zip(
        multi3drefer.convert(rows, "val", BOXES).instructions, (two, none), strict=True
    ):
        record = _ground_record(inst.to_dict(), logits, candidates, SCENE, 0.5)
        assert prediction_key("multi3drefer", record) == instruction_key(inst.to_dict())
        preds.append(json.dumps(record) + "\n")
    (tmp_path / "pred.jsonl").write_text("".join(preds))
    result = eval_multi3drefer.evaluate(
        tmp_path / "pred.jsonl", tmp_path / "ann.json", boxes=tmp_path / "boxes.json"
    )
    assert result.missing == 0 and result.metrics["F1@0.5"] == 100.0


def test_scanqa_prediction_keys_agree(tmp_path, tiny_cfg, tiny_tokenizer):
    from model_examples import make_example

    rows = [{"question_id": "val-scene0000-0", "scene_id": SCENE, "question": "What is it?",
             "answers": ["chair"], "object_ids": [1]}]  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps(rows))
    inst = scanqa.convert(rows, "val", BOXES).instructions[0].to_dict()
    batch = collate_examples([make_example(inst)], tiny_tokenizer, tiny_cfg, train=False)
    record = _text_record(inst, "chair", batch, 0)
    assert prediction_key("scanqa", record) == instruction_key(inst)
    (tmp_path / "pred.jsonl").write_text(json.dumps(record) + "\n")
    answers = eval_scanqa.load_answers(tmp_path / "ann.json")  # what the scorer matches on
    assert eval_scanqa.load_predictions(tmp_path / "pred.jsonl", answers) == {
        "val-scene0000-0": "chair"
    }
