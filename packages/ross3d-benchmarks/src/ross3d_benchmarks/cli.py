"""What every ross3d command line shares (the vocabulary itself is docs/cli.md).

* :class:`CliApp` is a ``typer.Typer`` whose commands all go through one error path: an expected
  error (bad input: ``ValueError`` and its subclasses, a missing or clashing file, plus the
  package's own error classes) becomes one red ``error:`` line on stderr and exit code 2, never
  a traceback. A bug (any other exception) still shows its traceback.
* :func:`renamed` resolves an option against its deprecated spelling (an old option name or an
  old positional argument, declared hidden with :func:`old_option` / :func:`old_argument`)
  and prints the one-line deprecation note.
* :func:`note` / :func:`nothing_to_do` print on stderr: stdout carries only a command's product
  meant for piping (``ross3d-eval report``'s markdown, ``check-init --json``).
* :data:`Device` is the ``--device`` option: auto | cpu | cuda | cuda:N.

Shared by the three CLIs through this package's ``cli`` extra (``ross3d-benchmarks[cli]``:
typer and rich), so the rules modules stay stdlib-only and neither data nor eval depends on the
other.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes EvalInputError, StaleCacheError, UnicodeDecodeError, JSON errors
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
DEVICES = ("auto", "cpu", "cuda")  # and cuda:N

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def error_line(err: BaseException) -> str:
    """One line for an expected error: an OSError names its file, newlines are folded."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def fail(err: BaseException, code: int = 2) -> typer.Exit:
    """Print ``error: <one line>`` in red on stderr; return the Exit to raise."""
    err_console.print(Text.assemble(("error: ", "red"), error_line(err)))
    return typer.Exit(code=code)


def note(text: str, label: str = "note") -> None:
    """A one-line message on stderr (``label: text``), printed without rich markup."""
    err_console.print(Text.assemble((f"{label}: ", "yellow"), text))


def nothing_to_do(what: str, redo: str = "pass --overwrite to redo") -> None:
    """The message of a resumable command re-run on finished output (it then exits 0)."""
    err_console.print(f"{what}, nothing to do ({redo})", markup=False)


def renamed(value: Any, old_value: Any, old: str, new: str) -> Any:
    """The value of option ``new``; when its deprecated spelling ``old`` was used instead
    (``old_value`` is not None/False), that value, after a note on stderr."""
    if old_value is None or old_value is False:
        return value
    note(f"{old} is deprecated; use {new}")
    return old_value


def required(value: Any, name: str) -> Any:
    """``value``, or a ValueError saying option ``name`` is missing (options whose
    deprecated positional form keeps them from being required for typer)."""
    if value is None:
        raise ValueError(f"missing option {name}")
    return value


def old_option(name: str) -> Any:
    """A hidden option: the deprecated spelling ``name`` of an option (resolve with
    :func:`renamed`)."""
    return typer.Option(name, hidden=True, show_default=False)


def old_argument(metavar: str) -> Any:
    """A hidden positional argument: the deprecated positional form of an option."""
    return typer.Argument(hidden=True, metavar=metavar, show_default=False)


def _device(value: str) -> str:
    if value in DEVICES or re.fullmatch(r"cuda:\d+", value):
        return value
    raise typer.BadParameter(f"{value!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")


Device = Annotated[
    str,
    typer.Option(
        "--device", parser=_device, metavar="[auto|cpu|cuda|cuda:N]",
        help="auto: cuda when available, else cpu",
    ),
]  # fmt: skip


class _Command(TyperCommand):
    """A command whose usage line leaves out hidden (deprecated positional) arguments."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not getattr(param, "hidden", False):
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class CliApp(typer.Typer):
    """``typer.Typer`` whose commands turn ``expected`` errors (added to EXPECTED_ERRORS)
    into one red line on stderr and exit code 2 (see :func:`fail`)."""

    def __init__(self, *, expected: tuple[type[BaseException], ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expected = EXPECTED_ERRORS + tuple(expected)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", _Command)
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            @functools.wraps(fn)
            def guarded(*a: Any, **kw: Any) -> Any:
                try:
                    return fn(*a, **kw)
                except self.expected as err:
                    raise fail(err) from None

            register(guarded)
            return fn

        return decorator
