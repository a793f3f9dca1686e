"""Shared test helpers (pytest puts this folder on sys.path, so tests import them with ``from conftest import``)."""

import os

from widefield3d.cli import main


def pytest_configure(config):
    """Figures drawn outside the command line (which picks Agg itself) go to files: no display needed."""
    os.environ.setdefault("MPLBACKEND", "Agg")


def run(argv) -> int:
    """Run the ``widefield3d`` command line in-process; return its exit status."""
    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
