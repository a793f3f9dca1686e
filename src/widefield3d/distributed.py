"""Inference of any trained model over a large OME-Zarr image on a ``dask.distributed`` cluster, block by block.

In the style of cellpose's ``distributed_eval``: the image is cut laterally (Y, X) into blocks; one task per block
reads its block plus a halo from the input OME-Zarr, runs the method's own predict function on that crop
(:func:`widefield3d.methods.deepz.refocus`, :func:`widefield3d.methods.mfpi.multifocal`, which tile it again to
bound memory, :mod:`widefield3d.tiling`) and writes the output of the block's core straight into the output
OME-Zarr. Nothing passes through the client but block indices and per-channel minima and maxima.

Exactness: blocks start on the network's pooling grid (multiples of its ``downsampling_factor``) and the halo is
its ``receptive_radius`` rounded up to that grid, so every core pixel sees exactly the input it sees in one pass
over the whole image; a crop that reaches the image border ends there and is reflected like the whole image
(numpy's ``mode="reflect"``, which is *not* dask's ``boundary="reflect"``, numpy's ``"symmetric"``). What a method
computes from the whole image (Deep-Z's triangle normalisation) is computed once on the client and handed to every
block. Hence the result equals whole-image inference to float precision (tested: < 1e-5).

The model is loaded once per worker (a cache keyed by model directory and device); the output is written to a
hidden temporary sibling and renamed when complete (pyramid levels included), so an error leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from widefield3d import io, zoo
from widefield3d.errors import InputError, Widefield3DError
from widefield3d.io.pyramid import add_pyramid
from widefield3d.progress import progress_bar
from widefield3d.tiling import round_up

__all__ = ["Block", "plan_blocks", "predict_distributed"]

INSTALL_HINT = "pip install 'widefield3d[distributed]'"


@dataclass(frozen=True)
class _Method:
    """How one method runs block-wise: its predict function, the options the engine sets itself, the options
    that would make a block depend on where it lies in the image (refused), and what it computes on the client."""

    predict: str
    engine_options: tuple[str, ...] = ("image", "model", "device", "progress")
    refused: Mapping[str, str] = field(default_factory=dict)


_METHODS = {
    "deepz": _Method("refocus", refused={
        **{k: "a surface is placed relative to the whole image" for k in
           ("dpm", "tilt_deg", "tilt_axis", "cylinder_radius_um", "cylinder_axis", "sinusoid")},
        "axes": "the input's axes come from the OME-Zarr"}),
    "mfpi": _Method("multifocal", refused={
        "halo": "the halo is the network's receptive radius, which makes blocks exact",
        "out": "the output is the OME-Zarr given as output"}),
}
_UNSUPPORTED = {
    "wfcon": "its instance norms need statistics of the whole volume (widefield3d.tiling.image_norm_statistics), "
             "not yet gathered block-wise; use `widefield3d confocal`",
    "volume-dip": "Deep Image Prior reconstruction fits one network to the whole stack; use `widefield3d volume`",
}


@dataclass(frozen=True)
class Block:
    """One task: the core ``[y0, y1) x [x0, x1)`` it writes and the crop ``[cy0, cy1) x [cx0, cx1)`` it reads
    (core + halo, clipped to the image), in input pixels."""

    index: int
    core: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]


def plan_blocks(shape_yx: tuple[int, int], block: int, halo: int) -> list[Block]:
    """Cut a ``(Y, X)`` image into square blocks of ``block`` pixels (smaller at the far edges), each read with
    ``halo`` pixels of context on every side that lies inside the image.

    Parameters
    ----------
    shape_yx : (int, int)
        Image size, pixels.
    block : int
        Core size, pixels; a multiple of the network's divisor keeps every crop on its pooling grid.
    halo : int
        Context, pixels (the network's receptive radius rounded up to its divisor).

    Returns
    -------
    list of Block
        Row by row; the cores tile the image without overlap.
    """
    ny, nx = shape_yx
    blocks: list[Block] = []
    for y0 in range(0, ny, block):
        for x0 in range(0, nx, block):
            y1, x1 = min(ny, y0 + block), min(nx, x0 + block)
            crop = (max(0, y0 - halo), min(ny, y1 + halo), max(0, x0 - halo), min(nx, x1 + halo))
            blocks.append(Block(len(blocks), (y0, y1, x0, x1), crop))
    return blocks


# ------------------------------------------------------------------------------------------------ the worker side

_CACHE: dict[tuple[str, str, int], Any] = {}  # (kind, path, version) -> loaded model or lazily opened image
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4


def _version(path: Path, *names: str) -> int:
    """When the files ``names`` in ``path`` last changed (ns): a cache key that sees a model or image rewritten."""
    return max((path / n).stat().st_mtime_ns for n in names)


def _cached(kind: str, path: str, version: int, load) -> Any:
    """``load(path)``, once per process and version (the workers' cache; thread-safe; the oldest entries go)."""
    key = (kind, path, version)
    with _CACHE_LOCK:
        if key not in _CACHE:
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = load(path)
        return _CACHE[key]


def _model(path: str, version: int, torch_threads: int | None = None):
    """The model in directory ``path``, loaded once per worker process (on CPU; the predict function moves it)."""
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    return _cached("model", path, version, zoo.load_model)


def _source(path: str, version: int) -> io.Image:
    """The input image, opened lazily once per worker process."""
    return _cached("image", path, version, lambda p: io.read(p, lazy=True))


@dataclass(frozen=True)
class _Job:
    """What every block task needs (small and picklable: paths, names and numbers)."""

    model: str  # model directory, absolute
    model_version: int
    method: str
    source: str  # input OME-Zarr, absolute
    source_version: int
    target: str  # the output's full-resolution array (temporary name), absolute
    scale: int  # output pixels per input pixel, laterally
    options: dict  # keyword arguments of the method's predict function
    device: str
    torch_threads: int | None


def _crop(image: io.Image, y: tuple[int, int], x: tuple[int, int]) -> io.Image:
    """``image`` cut to rows ``y`` and columns ``x`` (input pixels), read into memory."""
    key = tuple(slice(*y) if a == "Y" else slice(*x) if a == "X" else slice(None) for a in image.axes)
    data = image.data[key]
    if hasattr(data, "compute"):
        data = data.compute(scheduler="synchronous")  # inside a task: never the cluster's own scheduler
    return io.Image(np.asarray(data), image.axes, image.spacing_um, image.channel_names)


def _predict_function(method: str):
    return getattr(zoo.method_modules()[method], _METHODS[method].predict)


def _predict(job: _Job, model, image: io.Image) -> io.Image:
    return _predict_function(job.method)(image, model=model, device=job.device, progress=False, **job.options)


def _run_block(job: _Job, block: Block) -> tuple[int, np.ndarray, np.ndarray]:
    """Run one block on a worker: read its crop, predict, write its core; return its index and per-channel
    minimum and maximum of the written values."""
    import zarr

    model = _model(job.model, job.model_version, job.torch_threads)
    y0, y1, x0, x1 = block.core
    cy0, cy1, cx0, cx1 = block.crop
    result = _predict(job, model, _crop(_source(job.source, job.source_version), (cy0, cy1), (cx0, cx1)))
    s = job.scale
    core = np.asarray(result.data)[..., (y0 - cy0) * s:(y1 - cy0) * s, (x0 - cx0) * s:(x1 - cx0) * s]
    if not os.path.isdir(job.target):
        raise Widefield3DError(f"{job.target}: the output was removed while block {block.index} ran")
    target = zarr.open_array(job.target, mode="r+", config={"write_empty_chunks": True})  # every chunk stored
    target[..., y0 * s:y1 * s, x0 * s:x1 * s] = core
    other = tuple(i for i, a in enumerate(result.axes) if a != "C")
    return block.index, np.ravel(core.min(axis=other)), np.ravel(core.max(axis=other))


def _executing(dask_worker) -> int:
    """Tasks a worker is running now (for :func:`_drain`)."""
    return dask_worker.state.executing_count


def _drain(client, futures, timeout_s: float = 600.0) -> None:
    """Cancel what has not run and wait until no worker runs a block, so none writes after the clean-up."""
    client.cancel(futures)
    deadline, idle = time.monotonic() + timeout_s, 0
    while idle < 2 and time.monotonic() < deadline:
        try:
            busy = sum(client.run(_executing).values())
        except Exception:  # a worker that died runs nothing
            busy = 0
        idle = idle + 1 if busy == 0 else 0
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------ the client side


@contextlib.contextmanager
def _connect(cluster, n_workers: int, threads_per_worker: int, processes: bool) -> Iterator[Any]:
    """A ``distributed.Client``: the one given, one for a cluster object or a scheduler address, or a new
    ``LocalCluster`` on the loopback interface (closed on exit, as is a client made here)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise Widefield3DError(f"predict_distributed needs dask.distributed: {INSTALL_HINT}") from None
    if isinstance(cluster, Client):
        yield cluster
        return
    local = None
    if cluster is None:
        network = {"host": "127.0.0.1"} if processes else {}  # threads talk in-process (inproc://), no network
        local = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                             dashboard_address=None, silence_logs=40, **network)  # 40: logging.ERROR
    try:
        try:
            # not dask's default scheduler: nothing else computes on it, and a failed connection leaves no default
            client = Client(local if local is not None else cluster, timeout="30s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(f"cluster {cluster!r}: cannot connect to the scheduler ({err})") from None
        with client:
            yield client
    finally:
        if local is not None:
            local.close()


def _halo(generator) -> tuple[int, int, int]:
    """Lateral ``(halo, divisor, receptive radius)`` of a network, input pixels."""
    radius = getattr(generator, "receptive_radius", None)
    divisor = getattr(generator, "downsampling_factor", 1)
    if radius is None:
        raise InputError(f"predict_distributed: the {type(generator).__name__} network has no receptive_radius, so "
                         "no halo makes blocks exact")
    radius, divisor = (int(v[-1]) if isinstance(v, (tuple, list)) else int(v) for v in (radius, divisor))
    return round_up(radius, divisor), divisor, radius


def _prepare(method: str, model, source: io.Image, options: dict) -> dict:
    """What the method computes from the whole image, once, on the client (Deep-Z: the triangle normalisation of
    the plane, the paper's test-time normalisation)."""
    if method == "deepz" and options.get("normalisation") is None:
        from widefield3d.checks import check_memory, estimate_bytes
        from widefield3d.prep.normalise import triangle_normalisation

        extra = [f"{a}={n}" for a, n in zip(source.axes, source.data.shape) if a not in "YX" and n != 1]
        if extra:
            raise InputError(f"predict_distributed: Deep-Z refocuses one plane (YX), the input has {', '.join(extra)}")
        check_memory(estimate_bytes(source.data.shape[-2:], itemsize=8, copies=3),
                     "predict_distributed: the triangle normalisation of the whole plane (or pass options="
                     "{'normalisation': ...})")
        plane = source.as_axes("YX").data
        plane = np.asarray(plane.compute(scheduler="threads") if hasattr(plane, "compute") else plane, np.float32)
        options = {**options, "normalisation": triangle_normalisation(plane, model.config.data.saturate_fraction)}
    return options


def _probe(job: _Job, model, source: io.Image, divisor: int) -> tuple[io.Image, int]:
    """The method's output on a small corner of the image: its axes, dtype, spacing, channels and lateral scale."""
    n = min(2 * divisor, *source.data.shape[-2:])
    corner = _crop(source, (0, n), (0, n))
    result = _predict(job, model, corner)
    scale = result.data.shape[-1] // n
    if result.axes[-2:] != "YX" or result.data.shape[-2:] != (n * scale, n * scale) or scale < 1:
        raise InputError(f"predict_distributed: the {job.method} output {result.axes} {result.data.shape} of a "
                         f"{n} x {n} crop is not an integer lateral scaling")
    return result, scale


def _check_options(method: str, options: Mapping[str, Any] | None) -> dict:
    """The options as a dict; InputError for one the predict function lacks, sets itself, or that breaks blocks."""
    rules, predict = _METHODS[method], _predict_function(method)
    known = set(inspect.signature(predict).parameters)
    for key in options or {}:
        if key in rules.engine_options:
            raise InputError(f"options: {key!r} is set by predict_distributed itself (pass it as its argument)")
        if key in rules.refused:
            raise InputError(f"options: {key!r} cannot be used block-wise: {rules.refused[key]}")
        if key not in known:
            raise InputError(f"options: {key!r} is not an option of {predict.__name__} ({method!r} models)")
    return dict(options or {})


def _check_inputs(source: Path, output: Path, block: int) -> None:
    from widefield3d.checks import check_output

    if io.format_of(source) != "OME-Zarr":
        raise InputError(f"{source}: predict_distributed reads OME-Zarr (.ome.zarr); convert it with io.write")
    if not source.exists():
        raise InputError(f"{source}: file not found")
    if io.format_of(output) != "OME-Zarr":
        raise InputError(f"{output}: predict_distributed writes OME-Zarr (.ome.zarr)")
    check_output(output, inputs=[source])
    if output.exists() or output.is_symlink():
        raise InputError(f"{output}: exists; remove it or choose another output")
    if not isinstance(block, int) or isinstance(block, bool) or block < 1:
        raise InputError(f"block={block!r}: must be a positive number of pixels")


def predict_distributed(
    model: str | os.PathLike[str],
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: Mapping[str, Any] | None = None,
    block: int = 2048,
    cluster: Any = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    torch_threads: int | None = None,
    device: str = "cpu",
    pyramid: bool = True,
    progress: bool = True,
) -> io.Image:
    """Run a trained model over a large OME-Zarr image on a dask cluster, one block per task, into an OME-Zarr.

    Parameters
    ----------
    model : str or Path
        A shipped model's name or a model directory (Deep-Z(+) or MFPINet); every worker must see the same path.
    source : str or Path
        The input ``.ome.zarr`` (read crop by crop by the workers, never whole; Deep-Z's normalisation reads the
        plane once on the client). Its axes and spacing (µm) are those :func:`widefield3d.io.read` gives.
    output : str or Path
        The output ``.ome.zarr``; must not exist. Written under a temporary name and renamed when complete.
    options : mapping, optional
        Keyword arguments of the method's predict function: for Deep-Z (:func:`~widefield3d.methods.deepz.refocus`)
        ``z`` (µm, a number or a list for a virtual stack), ``denormalise``, ``allow_extrapolation``, ``mip``,
        ``normalisation``, ``tile``, ``batch_size``, ``planes_per_pass``; for MFPINet
        (:func:`~widefield3d.methods.mfpi.multifocal`) ``tile``. Surfaces (Deep-Z) and ``halo`` (MFPINet) are
        refused: they would make a block depend on its place in the image.
    block : int
        Core size of one task, input pixels (Y and X); a multiple of the network's divisor and at least twice the
        halo. The unit of distribution; the predict function's ``tile`` bounds memory inside a block.
    cluster : None, str, distributed.Client or cluster object
        None: a ``LocalCluster`` of ``n_workers`` workers on 127.0.0.1 (closed afterwards); a scheduler address
        (``"tcp://host:8786"``); a ``Client``; or a cluster object (e.g. ``dask_jobqueue.SLURMCluster``).
    n_workers, threads_per_worker, processes : int, int, bool
        The ``LocalCluster``'s layout (worker processes, or threads of this process with ``processes=False``).
    torch_threads : int, optional
        Threads of torch in each worker process; default ``cores // n_workers`` for a ``LocalCluster`` of
        processes made here, else torch's own default (set ``OMP_NUM_THREADS`` in the workers' environment).
    device : {"cpu", "auto", "cuda", "cuda:N"}
        Where each worker runs the network.
    pyramid : bool
        Add 2x-downsampled levels (:func:`widefield3d.io.pyramid.add_pyramid`) once the full resolution is written.
    progress : bool
        Show a progress bar over blocks.

    Returns
    -------
    io.Image
        The output, read lazily: the method's axes (Deep-Z ``YX`` or ``ZYX``, MFPINet ``CZYX``), dtype and spacing
        in µm; equal to the method's predict function on the whole image to float precision.

    Raises
    ------
    InputError
        Missing or non-OME-Zarr input, existing output, unknown model or one of an unsupported method, a block
        that is not a multiple of the divisor or is smaller than twice the halo, a refused option, an
        unreachable scheduler. Nothing is left at ``output`` on any error.
    """
    source, output = Path(source).absolute(), Path(output).absolute()
    _check_inputs(source, output, block)
    path = zoo.resolve_model(Path(model) if isinstance(model, os.PathLike) else model)
    method = zoo.read_config(path)["method"]
    if method not in _METHODS:
        why = _UNSUPPORTED.get(method, "no block-wise predict function is known for it")
        raise InputError(f"model {model}: {method!r} models cannot run block-wise: {why}")
    options = _check_options(method, options)
    model_dir = str(path.absolute())
    model_version = _version(path, zoo.CONFIG_NAME, zoo.WEIGHTS_NAME)
    loaded = _model(model_dir, model_version)
    halo, divisor, radius = _halo(loaded.generator)
    if block % divisor:
        raise InputError(f"block={block}: must be a multiple of the network's divisor {divisor} (e.g. "
                         f"{-(-block // divisor) * divisor})")
    if block < 2 * halo:
        raise InputError(f"block={block}: smaller than twice the halo ({halo} px: the receptive radius {radius} px "
                         f"on the network's {divisor}-px grid); use block >= {2 * halo}")
    source_version = _version(source, "zarr.json")
    image = _source(str(source), source_version)
    options = _prepare(method, loaded, image, options)
    ny, nx = image.data.shape[-2:]
    if torch_threads is None and cluster is None and processes:
        torch_threads = max(1, (os.cpu_count() or 1) // n_workers)
    job = _Job(model_dir, model_version, method, str(source), source_version, "", 1, options, device, torch_threads)
    probe, scale = _probe(job, loaded, image, divisor)
    shape = (*probe.data.shape[:-2], ny * scale, nx * scale)
    chunk = math.gcd(block * scale, 256)
    chunks = tuple(1 if a in "TC" else min(n, 16) if a == "Z" else min(n, chunk) for a, n in zip(probe.axes, shape))
    blocks = plan_blocks((ny, nx), block, halo)
    with _connect(cluster, n_workers, threads_per_worker, processes) as client, io.atomic_output(output) as tmp:
        io.create_ome_zarr(tmp, shape, probe.data.dtype, probe.axes, probe.spacing_um, chunks,
                           probe.channel_names, name=output.name)
        job = replace(job, target=str(tmp / "s0"), scale=scale)
        low, high = _run_blocks(client, job, blocks, progress)
        if pyramid:
            add_pyramid(tmp, scheduler=client)
        _set_display_range(tmp, low, high)
    return io.read(output, lazy=True)


def _run_blocks(client, job: _Job, blocks: Sequence[Block], progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Submit one task per block, follow them with a progress bar, and return the per-channel minimum and maximum
    of the output. On any error (or Ctrl-C) cancel the rest and wait until no worker writes before raising."""
    from distributed import as_completed

    futures = client.map(_run_block, [job] * len(blocks), blocks, pure=False)
    low = high = None
    try:
        with progress_bar("{task.description}", "bar", "count", "elapsed", "remaining", enabled=progress,
                          transient=False) as bar:
            task = bar.add_task("blocks", total=len(blocks))
            for future in as_completed(futures, loop=client.loop):
                _, lo, hi = future.result()
                low = lo if low is None else np.minimum(low, lo)
                high = hi if high is None else np.maximum(high, hi)
                bar.advance(task)
    except BaseException:
        _drain(client, futures)
        raise
    assert low is not None and high is not None  # at least one block
    return low, high


def _set_display_range(path: Path, low: np.ndarray, high: np.ndarray) -> None:
    """Set each channel's ``omero`` display window to the output's minimum and maximum."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    attrs: dict[str, Any] = group.attrs.asdict()
    ome: dict[str, Any] = dict(attrs["ome"])
    channels = [dict(c) for c in ome.get("omero", {}).get("channels", [])]
    for c, channel in enumerate(channels):
        lo, hi = float(low[min(c, len(low) - 1)]), float(high[min(c, len(high) - 1)])
        channel["window"] = {"min": lo, "max": hi, "start": lo, "end": hi}
    ome["omero"] = {**ome.get("omero", {}), "channels": channels}
    group.attrs["ome"] = ome
