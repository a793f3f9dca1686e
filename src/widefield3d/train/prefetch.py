"""Training batches drawn ahead in a background thread, in the order and with the random numbers of a plain loop.

On a GPU the numpy work of a method's ``sample_batch`` (crops, flips, stacking) took 23-37% of the training loop in
the first H200 run (docs/training.md); drawing the next batches while the device computes hides it. The batches are
the same, in the same order, as without prefetching: one thread alone draws from the trainer's random generator,
and :meth:`BatchPrefetcher.rng_state` gives the generator's state before the first batch not yet handed out, which
is what a checkpoint must store for a resumed run to draw the same batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from torch import Tensor

Batch = tuple[Tensor, Tensor]


class BatchPrefetcher:
    """Draws ``sample_batch(rng)`` batches ``depth`` ahead in a daemon thread; :meth:`next` hands them out in
    order. ``pin``: page-locked host memory, for asynchronous copies to a CUDA device. Use as a context manager
    (or call :meth:`close`)."""

    def __init__(self, sample_batch: Callable[[np.random.Generator], Batch], rng: np.random.Generator,
                 depth: int = 2, pin: bool = False):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._sample, self._rng, self._pin = sample_batch, rng, pin
        self._state = rng.bit_generator.state  # before the next batch handed out (a fresh dict per read)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="batch-prefetch", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        while not self._stop.is_set():
            try:
                x, y = self._sample(self._rng)
                if self._pin:
                    x, y = x.pin_memory(), y.pin_memory()
                item: tuple = ("batch", (x, y), self._rng.bit_generator.state)
            except BaseException as err:  # handed to the consumer, which raises it
                item = ("error", err, None)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[0] == "error":
                return

    def next(self) -> Batch:
        """The next batch (waits for it); re-raises an exception of ``sample_batch``."""
        kind, value, state_after = self._queue.get()
        if kind == "error":
            raise value
        self._state = state_after
        return value

    def rng_state(self) -> Mapping[str, Any]:
        """The random generator's state before the first batch not yet handed out (for checkpoints)."""
        return self._state

    def close(self) -> None:
        """Stop the thread (batches drawn ahead are dropped)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
