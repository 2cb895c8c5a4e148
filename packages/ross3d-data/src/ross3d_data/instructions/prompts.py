"""Task prompt templates, as Video-3D-LLM / Ross3D phrase them.

The spatial prompt ("The video captures 3D spatial information ...") and the image token are
NOT part of these: the model adds them when it builds the conversation. ``<coord>`` (Scan2Cap
query position) and the ``<ground>`` answer of grounding tasks are special tokens of the model.
"""

# What separates `<image>` from the task text in the public conversion scripts' user turn
# (Ross3D `scripts/3d/preprocessing/process_*.py`: "<image> {question} ..." for ScanQA, SQA3D and
# Scan2Cap, "<image>Identify ..." for ScanRefer and Multi3DRefer). The public training prompt
# keeps it after the spatial prompt (`<image>\n{spatial}\n {question}`), the public eval
# input after the image token and its newline (`<image>\n {question}`, `preprocess_qwen` of
# `ross3d/eval/model_*.py`).
IMAGE_SEPARATOR = {
    "scanqa": " ",
    "sqa3d": " ",
    "scan2cap": " ",
    "scanrefer": "",
    "multi3drefer": "",
}

SCANQA = "{question} Answer the question simply."
SQA3D = "{situation} {question} Answer the question using a single word or phrase."
SCAN2CAP = "Given an object located at <coord> , describe the object in detail."
SCANREFER = "Identify the object according to the following description.\n{description}"
MULTI3DREFER = (
    "Identify the object according to the following description.\n{description}\n"
    "There may be no corresponding object, or there may be one or more objects."
)


def sqa3d_question_type(question: str) -> str:
    """SQA3D breakdown type by the question's first word: what/is/how/can/which/others."""
    q = question.lstrip().lower()
    for prefix in ("what", "is", "how", "can", "which"):
        if q.startswith(prefix):
            return prefix
    return "others"


def capitalize_description(text: str) -> str:
    """Descriptions as the public conversion writes them (``description.capitalize()`` in Ross3D
    ``process_scanrefer.py``, ``process_multi3drefer.py``, ``process_scan2cap.py``): first
    character upper-case, the rest lower-case; surrounding whitespace is trimmed first."""
    return text.strip().capitalize()
