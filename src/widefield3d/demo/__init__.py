"""Presentation: the `widefield3d demo` report and the figures of each method, outside ``methods/``.

:func:`run_demo` (in :mod:`~widefield3d.demo.run`) simulates a worm, images it and writes ``report.html``, then
adds one section per method from :mod:`~widefield3d.demo.deepz`, :mod:`~widefield3d.demo.mfpi`,
:mod:`~widefield3d.demo.wfcon` and :mod:`~widefield3d.demo.volume` (which also draws ``reconstruct --figure``).
The figures are drawn with matplotlib on whatever backend the caller chose (the command line picks Agg).
"""

from widefield3d.demo.run import METHODS, run_demo

__all__ = ["METHODS", "run_demo"]
