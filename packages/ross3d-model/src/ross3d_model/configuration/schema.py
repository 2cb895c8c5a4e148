"""Config sections read from JSON with one-line errors, and described for docs/configuration.md.

- `build_section(cls, data, where)`: a dataclass from a JSON object: an unknown key lists the
  valid keys of its section; a value of the wrong JSON type names the key and the expected
  type (`train.lr must be a number, got "1e-5" (a string)`), before the dataclass's own checks
  run (which then never meet a string where they compare numbers).
- `field_docs(cls)`: every key (dotted, sections recursed) with its type, default and meaning;
  the meaning is the field's own comment (on its line, or the comment lines right above it),
  else the sentences of the class docstring that name it in backticks.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass

JSON_TYPES = {
    bool: "true/false",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
}


# ---------------------------------------------------------------------------- types
def dataclass_type(hint) -> type | None:
    """The dataclass `hint` names (also inside `X | None`), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if _is_union(hint):
        subs = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        return subs[0] if subs else None
    return None


def _is_union(hint) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def matches(value, hint) -> bool:
    """True when the JSON `value` has the type `hint` asks for (an integer is a number; a list
    is a tuple; a dataclass section is an object)."""
    if hint is typing.Any:
        return True
    if _is_union(hint):
        return any(matches(value, arg) for arg in typing.get_args(hint))
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(matches, value, args))
        return all(matches(v, args[0]) for v in value) if args else True
    if origin is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and matches(v, args[1]) for k, v in value.items()
        )
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint in (str, type(None)):
        return isinstance(value, hint)
    return True  # a type JSON cannot express is left to the dataclass's own checks


def type_name(hint) -> str:
    """How docs and errors name a type: `a number`, `a list of 3 numbers`, `a string or null`."""
    if _is_union(hint):
        args = sorted(typing.get_args(hint), key=lambda a: a is type(None))
        return " or ".join(type_name(a) for a in args)
    if dataclasses.is_dataclass(hint):
        return "an object (section)"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(set(args)) == 1:
                return f"a list of {len(args)} {_plural(args[0])}"
            return "a list of " + ", ".join(type_name(a) for a in args)
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin is dict:
        if not args:
            return "an object"
        values = _plural(args[1])
        return f"an object of ({values})" if " or " in values else f"an object of {values}"
    return JSON_TYPES.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint) -> str:
    """`numbers`, `strings`, `numbers or null`: a type named for a list's or object's items."""
    if _is_union(hint):
        args = sorted(typing.get_args(hint), key=lambda a: a is type(None))
        return " or ".join("null" if a is type(None) else _plural(a) for a in args)
    name = type_name(hint)
    return name if name == "true/false" else re.sub(r"^an? ", "", name) + "s"


def json_value(value) -> str:
    """`"1e-5" (a string)`: a value as JSON and its JSON type (`null` alone)."""
    shown = json.dumps(value) if _jsonable(value) else repr(value)
    if value is None:
        return shown
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kind = kinds.get(type(value)) or ("a list" if isinstance(value, list | tuple) else "an object")
    return f"{shown} ({kind})"


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------- building
def build_section(cls: type, data, where: str = ""):
    """`cls(**data)` for a JSON object `data`, recursing into dataclass-typed fields. `where`:
    the dotted section name ('' at the top). ValueError (one line, the keys dotted) for an
    unknown key (the valid keys listed), a value of the wrong type, or the dataclass's own
    checks."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    if not isinstance(data, dict):
        raise ValueError(
            f"{where or 'the config'} must be an object with the keys {', '.join(names)}, "
            f"got {json_value(data)}"
        )
    unknown = sorted(set(data) - set(names))
    if unknown:
        place, valid = (
            (f"in {where}", f"keys of {where}") if where else ("at the top level", "top-level keys")
        )
        raise ValueError(
            f"unknown keys {unknown} {place}; valid {valid}: {', '.join(names)} "
            "(docs/configuration.md)"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else key
        sub = dataclass_type(hints[key])
        if sub is not None and isinstance(value, dict):
            kwargs[key] = build_section(sub, value, dotted)
        elif not matches(value, hints[key]):
            raise ValueError(f"{dotted} must be {type_name(hints[key])}, got {json_value(value)}")
        else:
            kwargs[key] = value
    return cls(**kwargs)


# ---------------------------------------------------------------------------- describing
@dataclass(frozen=True)
class FieldDoc:
    """One config key: dotted name, type as `type_name` says it, default as JSON, meaning."""

    key: str
    type: str
    default: str
    meaning: str


def field_docs(cls: type, prefix: str = "") -> list[FieldDoc]:
    """Every key of `cls` in declaration order, dataclass sections recursed (`prefix.key`)."""
    hints = typing.get_type_hints(cls)
    meanings = field_meanings(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = f"{prefix}{f.name}"
        sub = dataclass_type(hints[f.name])
        if sub is not None and hints[f.name] is sub:
            out += field_docs(sub, f"{key}.")
            continue
        out.append(FieldDoc(key, type_name(hints[f.name]), _default(f), meanings.get(f.name, "")))
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    value = list(value) if isinstance(value, tuple) else value
    return json.dumps(value) if _jsonable(value) else repr(value)


def field_meanings(cls: type) -> dict[str, str]:
    """Field name -> its meaning (module docstring): the comment lines right above the field
    and the comment on its own line, else the docstring sentences that name it."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    body = ast.parse(source).body[0].body
    doc = inspect.getdoc(cls) or ""
    out = {}
    for node in body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        above, line = [], node.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        own = comments.get(node.end_lineno)  # the comment after the field on its line
        parts = [*above, own] if own else above
        out[node.target.id] = " ".join(parts) or _docstring_sentences(doc, node.target.id)
    return out


def _docstring_sentences(doc: str, name: str) -> str:
    """The docstring sentences that start with `name` in backticks, else those naming it."""
    text = " ".join(doc.replace("``", "`").split())
    sentences = re.split(r"(?<!e\.g\.)(?<!i\.e\.)(?<=\.)\s+(?=[A-Z`])", text)
    first = [s for s in sentences if s.startswith(f"`{name}`")]
    return " ".join(first or [s for s in sentences if f"`{name}`" in s])
