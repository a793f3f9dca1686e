"""The :class:`Image`: pixel data with axes, physical spacing (µm) and channel names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import dask.array as da
import numpy as np

from widefield3d.errors import InputError
from widefield3d.io.checks import (
    SPATIAL_AXES,
    check_axes,
    check_channel_names,
    check_letters,
    check_ndim,
    spacing_dict,
)


@dataclass(eq=False, init=False)  # __init__ takes a spacing mapping or triple, the field is a dict
class Image:
    """Pixel data with axes, physical spacing and channel names.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        The pixels (anything else is converted with ``numpy.asarray``).
    axes : str
        One unique letter from ``TCZYX`` per dimension, in data order, e.g. ``'ZYX'``, ``'CYX'`` (RGB: C=3).
    spacing_um : dict of str to float, or (dz, dy, dx)
        Pixel spacing in µm, keyed by ``'Z'``, ``'Y'``, ``'X'``. Kept for the spatial axes of ``axes`` only;
        one without a value gets 1.0.
    channel_names : list of str, optional
        One name per index of the C axis (one name if there is no C axis).
    """

    data: Any
    axes: str
    spacing_um: dict[str, float]
    channel_names: list[str] | None

    def __init__(self, data: Any, axes: str, spacing_um: Mapping[str, float] | Sequence[float] | None = None,
                 channel_names: list[str] | None = None) -> None:
        self.data = data if isinstance(data, da.Array) else np.asarray(data)
        self.axes = check_axes(axes, self.data.shape, "Image")
        given = spacing_dict(spacing_um, "Image.spacing_um")
        self.spacing_um = {a: given.get(a, 1.0) for a in SPATIAL_AXES if a in self.axes}
        self.channel_names = check_channel_names(channel_names, self.axes, self.data.shape, "Image")

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """``(dz, dy, dx)`` in µm, 1.0 where unknown."""
        dz, dy, dx = (self.spacing_um.get(a, 1.0) for a in SPATIAL_AXES)
        return dz, dy, dx

    def as_axes(self, target: str) -> Image:
        """The same image with axes ``target``: reordered, with singleton axes inserted or removed.

        ``Image(stack, 'ZYX').as_axes('CZYX')`` adds a C axis of size 1; an axis missing from ``target`` must have
        size 1. Numpy data stay views; dask data stay lazy.
        """
        check_letters(target, f"Image.as_axes({target!r})")
        for axis, size in zip(self.axes, self.data.shape):
            if axis not in target and size != 1:
                raise InputError(f"Image.as_axes({target!r}): cannot drop axis {axis} of size {size} "
                                 f"(axes '{self.axes}', shape {tuple(self.data.shape)})")
        data = self.data[tuple(slice(None) if a in target else 0 for a in self.axes)]
        kept = [a for a in self.axes if a in target]
        added = [a for a in target if a not in self.axes]
        data = data[(Ellipsis,) + (None,) * len(added)]
        order = kept + added
        data = data.transpose([order.index(a) for a in target])
        names = None if self.channel_names is None else list(self.channel_names)
        return replace(self, data=data, axes=target, spacing_um=dict(self.spacing_um), channel_names=names)

    def transpose_to(self, axes: str) -> Image:
        """The same image with its axes reordered to ``axes``, which must hold exactly the same letters."""
        if sorted(axes) != sorted(self.axes):
            raise InputError(f"Image.transpose_to({axes!r}): not a reordering of the axes '{self.axes}'")
        return self.as_axes(axes)


def require_ndim(image_or_array: Any, allowed: Iterable[int], name: str) -> None:
    """Raise InputError unless the array (or ``Image.data``) has one of the ``allowed`` numbers of dimensions.

    Parameters
    ----------
    image_or_array : Image, numpy.ndarray, dask.array.Array or anything with ``ndim`` and ``shape``
    allowed : iterable of int
        Accepted numbers of dimensions, e.g. ``{2, 3}``.
    name : str
        The file or argument named in the message.
    """
    check_ndim(image_or_array.data if isinstance(image_or_array, Image) else image_or_array, allowed, name)
