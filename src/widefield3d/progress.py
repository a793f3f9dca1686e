"""One way to build a rich progress bar, so every long loop of the library shows the same kind of bar.

Library code takes ``progress: bool`` and passes it on as ``enabled``; the bar writes to stderr (rich's console)
and draws nothing when disabled. Under ``torchrun`` (``WORLD_SIZE > 1``) only rank 0 draws, so N ranks preparing
their data do not draw N bars over each other.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["progress_bar"]

_NAMED = {"bar": "BarColumn", "count": "MofNCompleteColumn", "elapsed": "TimeElapsedColumn",
          "remaining": "TimeRemainingColumn"}


def progress_bar(*columns: str, enabled: bool = True, transient: bool = True, console: Any = None) -> Progress:
    """A rich ``Progress`` (use it as a context manager, then ``add_task``/``advance``/``update``).

    Parameters
    ----------
    *columns
        The columns, left to right: ``"bar"``, ``"count"`` (done/total), ``"elapsed"``, ``"remaining"`` (time), or
        any other string as a text template (``"{task.description}"``, ``"{task.fields[status]}"``, ``"tiles"``).
        None: rich's default columns (description, bar, percentage, time remaining).
    enabled
        Draw the bar; ``False`` draws nothing (nor does a rank other than 0 of a ``torchrun`` launch).
    transient
        Remove the bar when the loop ends.
    console
        The rich console to draw on; rich's global console when None.

    Examples
    --------
    >>> with progress_bar("{task.description}", "bar", "count", enabled=False) as bar:
    ...     task = bar.add_task("steps", total=3)
    ...     for _ in range(3):
    ...         bar.advance(task)
    >>> bar.tasks[0].completed
    3
    """
    from rich import progress as rich_progress

    made = [getattr(rich_progress, _NAMED[c])() if c in _NAMED else rich_progress.TextColumn(c) for c in columns]
    enabled = enabled and (os.environ.get("RANK", "0") == "0" or os.environ.get("WORLD_SIZE", "1") == "1")
    return rich_progress.Progress(*made, disable=not enabled, transient=transient, console=console)
