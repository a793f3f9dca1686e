"""The `widefield3d` command line: the entry point. It builds the app from the verbs (:mod:`widefield3d.verbs`),
picks matplotlib's file-only backend, and turns errors into exit statuses: bad input prints one line and exits 2, a
usage error prints click's message and exits 2, Ctrl-C prints "interrupted" and exits 130."""

from __future__ import annotations

import errno
import importlib
import os
import sys
import warnings

import click
import pydantic
import typer
from rich.markup import escape

from widefield3d.errors import Widefield3DError
from widefield3d.verbs._common import console

VERBS = ("evaluate", "info", "demo", "beads", "deepz", "mfpi", "models", "export", "register", "volume", "wfcon",
         "distributed", "simulate", "activity")
"""The modules of :mod:`widefield3d.verbs`, in the order of ``widefield3d --help``."""


def _build_app() -> typer.Typer:
    """The app: each verb module adds its commands (``register(app, train_app)``), then the ``train`` group."""
    app = typer.Typer(
        help="3D vision for wide-field microscopes: refocus, multi-focal, confocal-like stacks, volumes, simulation.",
        no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    )
    train_app = typer.Typer(
        help="Train a model (Deep-Z, MFPINet, WFCON-Net) on a folder of stacks or a simulated dataset.",
        no_args_is_help=True)
    for name in VERBS:
        importlib.import_module(f"widefield3d.verbs.{name}").register(app, train_app)
    app.add_typer(train_app, name="train")
    return app


app = _build_app()

_USAGE_ERRORS = (click.ClickException, typer.TyperException)  # typer >= 0.24 vendors click as typer._click
_ABORTS = (click.exceptions.Abort, typer.Abort, KeyboardInterrupt)
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def _error(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True, markup=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line, like an error (not Python's two lines with the source)."""
    console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True, markup=True)


def _os_error_line(err: OSError) -> str:
    """One line for an OS error: the file it concerns and the system's reason."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.filename is not None and err.filename2 is not None:
        return f"{err.filename} -> {err.filename2}: {reason}"
    if err.filename is not None:
        return f"{err.filename}: {reason}"
    return reason


def _figures_to_files() -> None:
    """Draw figures with matplotlib's Agg backend: into files, with no window and no display needed. Only the
    command line chooses a backend; the library draws with the caller's."""
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    else:
        os.environ["MPLBACKEND"] = "Agg"  # read when matplotlib is imported; spares --help that import


def main(argv: list[str] | None = None) -> None:
    """Entry point. Usage errors print click's usage message and exit 2 (no arguments: the help); bad input
    prints one line naming the file or argument and exits 2; Ctrl-C prints "interrupted" and exits 130."""
    _figures_to_files()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            status = app(args=argv, standalone_mode=False)
    except Widefield3DError as err:
        _error(str(err).strip().replace("\n", " "))
        sys.exit(2)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        _error(f"{err.title} {where}: {first['msg']}")
        sys.exit(2)
    except _USAGE_ERRORS as err:
        err.show()  # click's own message: usage line, hint and "Error: ..." ("did you mean" where it has one)
        sys.exit(2)
    except _ABORTS:
        console.print("interrupted", highlight=False)
        sys.exit(INTERRUPTED)
    except MemoryError as err:
        _error(f"not enough memory{': ' + str(err) if str(err) else ''} (use a smaller input or range)")
        sys.exit(2)
    except OSError as err:
        if err.errno == errno.EPIPE:  # output piped into a program that stopped reading (| head)
            sys.exit(1)
        _error(_os_error_line(err))
        sys.exit(2)
    # standalone_mode=False: typer turns Ctrl-C into a returned 130 and ctx.exit(n) into a returned n
    if status == INTERRUPTED:
        console.print("interrupted", highlight=False)
        sys.exit(INTERRUPTED)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
