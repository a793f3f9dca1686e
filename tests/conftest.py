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


def one_line_error(capsys, words: str) -> str:
    """The captured stderr of a refused command: it names ``words``, has no traceback and is one line."""
    err = capsys.readouterr().err.strip()
    assert words in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def write_tiny_deepz(path):
    """A randomly initialised Deep-Z model of width 1/16 saved in ``path`` (range +-10 µm, 0.325 µm pixels; receptive
    radius 108 px, divisor 16); returns ``path``."""
    import torch

    from widefield3d import zoo
    from widefield3d.methods import deepz
    from widefield3d.nets.deepz import DeepZGenerator

    torch.manual_seed(0)
    config = deepz.DeepZConfig(network={"width": 0.0625}, provenance={"pixel_um": 0.325})
    zoo.write_config(path, "deepz", config.model_dump(mode="json"))
    zoo.save_weights(path, DeepZGenerator(width=0.0625))
    return path
