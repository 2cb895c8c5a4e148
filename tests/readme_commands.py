"""The command lines of the READMEs' and docs' bash blocks, parsed as a shell would split them.

One parser for every test that reads the docs (`test_cli_vocabulary.py`: every documented line
parses; `test_newcomer.py`: the README's demo walk runs), so the docs cannot drift from the code.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).parents[1]
TOOLS = ("ross3d-data", "ross3d-model", "ross3d-eval")


def bash_blocks(text: str) -> list[str]:
    """The bodies of the ```bash fenced blocks of a markdown text, in order."""
    blocks = text.split("```")[1::2]
    return [b.removeprefix("bash\n") for b in blocks if b.startswith("bash\n")]


def section(text: str, heading: str) -> str:
    """The markdown under `## heading` up to the next `## ` heading (ValueError if absent)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise ValueError(f"no '## {heading}' section")
    return match.group(1)


def command_lines(block: str) -> list[list[str]]:
    """Each command of a bash block as shell words: continuations joined, comments dropped."""
    lines = block.replace("\\\n", " ").splitlines()
    return [words for words in (shlex.split(line, comments=True) for line in lines) if words]


def tool_command(words: list[str]) -> tuple[str, list[str]] | None:
    """(tool, arguments after it) of a line that runs one of the three CLIs, directly or as
    `torchrun ... -m ross3d_model.cli ...`; None for any other line."""
    words = [w for w in words if not (w.startswith("[") or w.endswith("]"))]  # pip extras
    if "-m" in words and "ross3d_model.cli" in words:
        return "ross3d-model", words[words.index("ross3d_model.cli") + 1 :]
    for tool in TOOLS:
        if tool in words:
            return tool, words[words.index(tool) + 1 :]
    return None


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(file, tool, arguments) of every CLI command line in the READMEs' and docs' bash blocks."""
    found = []
    for path in [ROOT / "README.md", *ROOT.glob("packages/*/README.md"), *ROOT.glob("docs/*.md")]:
        for block in bash_blocks(path.read_text()):
            for words in command_lines(block):
                parsed = tool_command(words)
                if parsed is not None:
                    found.append((str(path.relative_to(ROOT)), *parsed))
    return found
