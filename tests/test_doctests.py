"""The docstring examples of the public entry points run as tests (``doctest``; the modules import torch, so they
are not collected with ``--doctest-modules``)."""

import doctest
import importlib

import pytest

MODULES = ["progress", "zoo", "methods.deepz", "methods.mfpi", "methods.wfcon", "methods.volume"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(f"widefield3d.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted, f"widefield3d.{name} has no examples"
    assert not result.failed
