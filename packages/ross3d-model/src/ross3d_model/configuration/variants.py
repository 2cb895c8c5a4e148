"""Config files as a base plus overrides: `{"base": "7b", "vae": {"antialias": true}}`.

`"base"` names a shipped config of the same kind (a run config's base is a run config, a model
config's base a model config) or a JSON path, relative to the file that names it. The file's
other keys are merged into the base recursively: objects are merged key by key, scalars and
lists replace the base's value. A base may have a base of its own; a cycle or an unknown base
is a one-line ValueError naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

BASE_KEY = "base"


def merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` merged in: dict values merged recursively, anything else (scalars,
    lists, null) replaces. Neither input is modified."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_json_object(path: Path, kind: str) -> dict:
    """The JSON object in `path`; ValueError naming the file and the config kind otherwise."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read {kind}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {kind} must be a JSON object, got {type(data).__name__}")
    return data


def resolve_file(
    path: Path,
    kind: str,
    shipped: dict[str, Path],
    localize: Callable[[dict, Path], dict] | None = None,
) -> dict:
    """The config dict of `path` with its chain of bases merged in (`base` key removed).
    `kind` ("run config" / "model config") words the errors; `shipped` maps the names a base
    may use to their files. `localize(data, folder)`, when given, rewrites the keys of each
    file that is not shipped before the merge (relative paths made absolute against the
    file's own folder)."""
    chain: list[Path] = []
    layers: list[dict] = []
    current = path
    while True:
        resolved = current.resolve()
        if resolved in chain:
            names = " -> ".join(p.name for p in [*chain, resolved])
            raise ValueError(f"{path}: {kind} bases form a cycle: {names}")
        chain.append(resolved)
        data = read_json_object(current, kind)
        base = data.pop(BASE_KEY, None)
        shipped_file = resolved in {p.resolve() for p in shipped.values()}
        layers.append(data if localize is None or shipped_file else localize(data, current.parent))
        if base is None:
            break
        current = _base_path(base, current, kind, shipped)
    out: dict = {}
    for layer in reversed(layers):
        out = merge(out, layer)
    return out


def _base_path(base, named_in: Path, kind: str, shipped: dict[str, Path]) -> Path:
    if not isinstance(base, str):
        raise ValueError(f"{named_in}: {kind} base must be a name or path, got {base!r}")
    if base in shipped:
        return shipped[base]
    candidate = named_in.parent / base
    if not candidate.is_file():
        raise ValueError(
            f"{named_in}: unknown base {kind} {base!r} (shipped {kind}s: {sorted(shipped)})"
        )
    return candidate
