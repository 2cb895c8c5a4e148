"""docs/configuration.md, generated from the config dataclasses (`schema.field_docs`): every
run-config and model-config key with its type, default and meaning. A test checks that the
committed file is current; regenerate it with

    uv run python -m ross3d_model.configuration.docs > docs/configuration.md
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

from ross3d_model.configuration.model import Ross3DConfig, shipped_configs
from ross3d_model.configuration.run import RunConfig, shipped_run_configs
from ross3d_model.configuration.schema import dataclass_type, field_docs

REGENERATE = "uv run python -m ross3d_model.configuration.docs > docs/configuration.md"

INTRO = """\
# Configuration

Two kinds of config share names (`tiny`, `7b`, ...). A **run config** (`ross3d-model train
--config`, `cache-latents --config`) says which model config to build, how to train and which
data to read. A **model config** (`check-init --model-config`, the run config's `model` key)
sizes and wires the model. Both are JSON objects; a file may start from a shipped config or
another file and set only what differs: `{{"base": "7b", "train": {{"lr": 2e-5}}}}` (objects
merge key by key, anything else replaces; a relative path is relative to the file naming it).

Errors are one line naming the file: an unknown key lists the valid keys of its section
(`r.json: unknown keys ['lrr'] in train; valid keys of train: max_steps, ...`), a value of the
wrong type names the key and the type expected (`r.json: train.lr must be a number, got
"1e-5" (a string)`), and each section checks its own values (ranges, choices, sizes that
follow from others).

This page is generated from the config dataclasses
(`ross3d_model.configuration`); a test keeps it current. Regenerate it with
`{regenerate}`.
"""


def render() -> str:
    """The whole of docs/configuration.md."""
    parts = [INTRO.format(regenerate=REGENERATE)]
    parts += _kind(
        "Run config",
        RunConfig,
        sorted(shipped_run_configs()),
        "`ross3d_model/configuration/configs/*.json`",
    )
    parts += _kind(
        "Model config",
        Ross3DConfig,
        sorted(shipped_configs()),
        "`ross3d_model/configuration/configs/model/*.json`",
    )
    return "\n".join(parts).rstrip("\n") + "\n"


def _kind(title: str, cls: type, shipped: list[str], where: str) -> list[str]:
    names = ", ".join(f"`{n}`" for n in shipped)
    out = [f"## {title}", "", f"Shipped: {names} ({where}). {_first_line(cls)}", ""]
    top = [d for d in field_docs(cls) if "." not in d.key]
    if top:
        out += ["### Top-level keys", "", *_table(top), ""]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        sub = dataclass_type(hints[f.name])
        if sub is None:
            continue
        out += [f"### `{f.name}`", "", _first_line(sub), ""]
        out += [*_table(field_docs(sub, f"{f.name}.")), ""]
    return out


def _table(docs) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for d in docs:
        cells = (f"`{d.key}`", d.type, f"`{d.default}`", d.meaning or "-")
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return rows


def _first_line(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


if __name__ == "__main__":
    print(render(), end="")
