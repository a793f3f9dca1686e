"""Deep-Z training pairs from wide-field z-stacks (Wu et al. 2019, Methods, "Image pre-processing and training data
preparation" and "Cross-modality alignment of wide-field and confocal fluorescence images").

Per field of view (one ``ZYX`` stack):

1. rigid alignment of the planes (:func:`widefield3d.prep.align.align_stack`, StackReg-like; ``align="stackreg"``
   uses pystackreg, the port of the ImageJ plugin the paper used; ``align="none"`` skips it for simulated stacks);
2. an extended-depth-of-field (EDF) image (:func:`widefield3d.prep.edf.extended_depth_of_field`);
3. normalisation of the whole stack against the EDF: triangle threshold, background subtracted, scale such that
   1% of the foreground pixels saturate (:func:`widefield3d.prep.normalise.triangle_normalisation`);
   ``normalise_against="input"`` (ours) then re-normalises each pair, input and target alike, against the whole
   field's input plane, which is how a single image is normalised at inference (the paper's steps 1-3 "applied on
   the input image"): with the EDF a defocused plane is dimmer than in focus, with its own statistics it is not,
   and a model trained one way and used the other misjudges defocus (docs/deepz.md, "Normalisation");
4. a foreground mask of the EDF (:func:`widefield3d.prep.mask.foreground_mask`) and a greedy minimal cover of it
   by ``patch x patch`` regions with ~5% overlap (:func:`widefield3d.prep.cover.patch_cover`);
5. per region: the middle plane = the plane of highest standard deviation; the ``planes_each_side`` planes above
   and below it are inputs; for each input, ``targets_per_input`` random target planes within the trained axial
   range; the DPM is the uniform ``z_target - z_input`` (µm), divided by ``range_um`` before entering the network;
6. with ``target_source="clean"`` (simulated data) the targets are the noise-free stacks the simulator writes
   beside the measured ones, mapped to the measured scale (least-squares gain/offset), moved and normalised like
   them: the L1 optimum is the same (the median of a noisy target is close to its expectation) but the gradients
   are far less noisy, which matters for a CPU budget;
7. pairs split at random 85/15 into training and validation; training batches are augmented by a random flip and
   rotation by a multiple of 90 degrees, validation is not.

Deep-Z+ (``target="confocal"``): the wide-field and confocal stacks of a field are each aligned and normalised
against their own EDF; the confocal stack is warped onto the wide-field grid by a feature-based projective
registration of the two EDF images (:mod:`widefield3d.prep.projective`; ``registration="translation"``: a shift by
band-passed cross-correlation, for images with too few key points; ``"auto"``: projective, else translation),
pixels outside the overlap are dropped from the mask (``registration="none"`` skips this for stacks that share
one pixel grid, e.g. simulated pairs);
per region the axial zero of each stack is the peak of its SSIM focus curve against its EDF
(quadratic fit through the four best points, :func:`widefield3d.prep.focus.focus_zero`), and the DPM is the
difference of the centred heights (``axial="none"`` keeps the stacks' own z for pairs on one z grid: on simulated
8 µm thick ``deepzplus-63x14`` fields the two focus zeros of a 64 px region differ by a standard deviation of
2.2 µm, so centring them would corrupt most DPMs of a ±3 µm model). A field whose registration fails is skipped
and listed in :attr:`PairSet.skipped`.

Inputs: a directory with ``widefield/`` (and ``confocal/`` for Deep-Z+) holding one stack per field with equal
file names (e.g. a :func:`widefield3d.sim.dataset.simulate_dataset` directory), or a directory whose image files
are the wide-field stacks themselves. The axial step comes from the files' Z spacing.

References
----------
Wu, Y., et al. "Three-dimensional virtual refocusing of fluorescence microscopy images using deep learning."
Nature Methods (2019). (The paper's text in ``shared/seeds/004_*.txt`` gives no DOI of its own.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from widefield3d import io
from widefield3d.analysis.refocus_measures import gain_offset
from widefield3d.errors import InputError
from widefield3d.prep.augment import random_dihedral
from widefield3d.progress import progress_bar

IMAGE_SUFFIXES = (".tif", ".tiff", ".zarr", ".npy")


class RegistrationError(InputError):
    """A field (Deep-Z+) whose confocal and wide-field EDF images could not be co-registered; :func:`build_pairs`
    skips it and lists it in :attr:`PairSet.skipped`."""


class DeepZDataConfig(BaseModel):
    """How training pairs are built (paper values as defaults; lengths in µm, sizes in pixels)."""

    model_config = ConfigDict(extra="forbid")

    target: Literal["widefield", "confocal"] = Field("widefield", description="confocal = Deep-Z+")
    patch_px: int = Field(256, ge=16, description="side of the training regions (paper 256)")
    cover_overlap: float = Field(0.05, ge=0, lt=1, description="largest overlap of cover regions (area fraction)")
    planes_each_side: int = Field(20, ge=0, description="input planes above and below the middle plane")
    targets_per_input: int = Field(8, ge=1, description="random target planes per input (paper 5-10; Deep-Z+ 4)")
    range_um: float = Field(10.0, gt=0, description="largest |DPM| trained; DPMs are divided by it")
    saturate_fraction: float = Field(0.01, gt=0, lt=1, description="foreground fraction above 1 after normalising")
    registration: Literal["projective", "translation", "auto", "none"] = Field(
        "projective", description="Deep-Z+ lateral co-registration of the EDF images: feature-based projective "
                                  "(paper), intensity-based translation (for images with too few features), auto "
                                  "(projective, else translation), or none when both stacks share one pixel grid")
    axial: Literal["focus", "none"] = Field(
        "focus", description="Deep-Z+ axial co-registration per region: the peak of each stack's SSIM focus curve "
                             "(paper), or none when both stacks share one z grid (simulated pairs: the focus "
                             "curves of thick samples differ by about 2 µm between the modalities)")
    align: Literal["rigid", "stackreg", "none"] = Field(
        "rigid", description="rigid alignment of the planes: ours (rigid), pystackreg (stackreg, the paper's ImageJ "
                             "StackReg), or none for simulated stacks, which need none (true/false: rigid/none)")
    normalise_against: Literal["edf", "input"] = Field(
        "edf", description="edf: every plane against the stack's EDF (paper); input: each pair against its whole "
                           "input plane, as a single image is normalised at inference (ours)")
    target_source: Literal["measured", "clean"] = Field(
        "measured", description="clean: the simulator's noise-free stacks (<modality>_clean/) as targets, on the "
                                "measured stack's scale (simulated data only; CPU-variant choice)")
    validation_fraction: float = Field(0.15, gt=0, lt=1)
    max_fields: int | None = Field(None, ge=1, description="use only the first N fields (None: all)")
    seed: int = 0

    @field_validator("align", mode="before")
    @classmethod
    def _align_from_bool(cls, value):
        """Configs written before the choice was added say true (rigid) or false (none)."""
        return {True: "rigid", False: "none"}.get(value, value) if isinstance(value, bool) else value


@dataclass
class PairSet:
    """Training pairs that share cropped stacks: pair ``k`` maps ``inputs[r][i]`` + DPM to ``targets[r][t]``.

    Attributes
    ----------
    inputs, targets : list of ndarray
        Per region, the normalised ``(Z, P, P)`` float32 input (wide-field) and target stacks.
    pairs : ndarray of int64
        ``(N, 3)`` rows ``(region, input plane, target plane)``.
    dpm_um : ndarray of float32
        ``(N,)`` refocus distance ``z_target - z_input`` of each pair, µm.
    range_um : float
        DPMs are divided by this before entering the network.
    skipped : list of str
        Fields left out, with the reason (alignment or Deep-Z+ registration failed).
    pair_norm : ndarray of float32, optional
        ``(N, 3)`` ``(input background, scale, target background)`` per pair, applied in :meth:`batch` as
        ``(x - input background) / scale`` and ``(y - target background) / scale``
        (``normalise_against="input"``: the whole input plane's own normalisation, in the stacks' EDF units).
    """

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    pairs: np.ndarray
    dpm_um: np.ndarray
    range_um: float
    skipped: tuple[str, ...] = ()
    pair_norm: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, index: np.ndarray) -> PairSet:
        """The pairs at ``index`` (sharing the stacks)."""
        return PairSet(self.inputs, self.targets, self.pairs[index], self.dpm_um[index], self.range_um, self.skipped,
                       None if self.pair_norm is None else self.pair_norm[index])

    def split(self, validation_fraction: float, seed: int) -> tuple[PairSet, PairSet]:
        """Random split into (training, validation) pairs."""
        order = np.random.default_rng(seed).permutation(len(self))
        n_val = max(1, int(round(validation_fraction * len(self))))
        if n_val >= len(self):
            raise InputError(f"training data: only {len(self)} pairs, too few to split off a validation set")
        return self.subset(np.sort(order[n_val:])), self.subset(np.sort(order[:n_val]))

    def batch(self, index, rng: np.random.Generator | None = None, crop_px: int | None = None) -> tuple[
            torch.Tensor, torch.Tensor]:
        """Network input ``(B, 2, P, P)`` (image, DPM / range) and target ``(B, 1, P, P)`` for the pairs ``index``.

        With ``rng`` each pair gets a random flip and rotation by a multiple of 90 degrees (and a random
        ``crop_px`` window if given); without, the pairs are returned as they are (validation).
        """
        xs, ys = [], []
        for k in np.atleast_1d(index):
            r, i, t = self.pairs[k]
            x, y = self.inputs[r][i], self.targets[r][t]
            if self.pair_norm is not None:
                x_background, scale, y_background = self.pair_norm[k]
                x, y = (x - x_background) / scale, (y - y_background) / scale
            if rng is not None:
                if crop_px is not None and crop_px < x.shape[-1]:
                    y0, x0 = rng.integers(0, x.shape[-1] - crop_px + 1, size=2)
                    x, y = x[y0:y0 + crop_px, x0:x0 + crop_px], y[y0:y0 + crop_px, x0:x0 + crop_px]
                x, y = random_dihedral(rng, x, y)
            dpm = np.full(x.shape, self.dpm_um[k] / self.range_um, np.float32)
            xs.append(np.stack([x, dpm]))
            ys.append(y[None])
        x, y = (torch.from_numpy(np.ascontiguousarray(np.stack(a))) for a in (xs, ys))
        return x, y


COMPANION_MARKERS = ("_clean", "_truth", "_mip")
"""Name endings (before the extension) of the files `simulate acquire` and `refocus --mip` write beside a stack."""


def _stack_files(directory: Path) -> list[Path]:
    """Image stacks in ``directory``, without hidden files and without the simulator's companion files."""
    def companion(name: str) -> bool:
        stem = name.lower()
        for suffix in (".ome.tif", ".ome.tiff", ".ome.zarr", *IMAGE_SUFFIXES):
            stem = stem.removesuffix(suffix)
        return stem.endswith(COMPANION_MARKERS)

    return sorted(p for p in directory.iterdir()
                  if not p.name.startswith(".") and p.name.lower().endswith(IMAGE_SUFFIXES) and not companion(p.name))


def find_stacks(data_dir: str | Path, target: str) -> list[tuple[Path, Path | None]]:
    """``(wide-field stack, confocal stack or None)`` per field of view in ``data_dir`` (see the module doc)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"{root}: training data directory not found")
    wf_dir = root / "widefield" if (root / "widefield").is_dir() else root
    files = _stack_files(wf_dir)
    if not files:
        raise InputError(f"{wf_dir}: no image stacks ({', '.join(IMAGE_SUFFIXES)}) found")
    if target == "widefield":
        return [(f, None) for f in files]
    conf_dir = root / "confocal"
    if not conf_dir.is_dir():
        raise InputError(f"{root}: --target confocal needs the sub-directories widefield/ and confocal/")
    pairs = [(f, conf_dir / f.name) for f in files if (conf_dir / f.name).exists()]
    if not pairs:
        raise InputError(f"{conf_dir}: no confocal stack has the name of a wide-field stack in {wf_dir}")
    return pairs


def _read_stack(path: Path) -> tuple[np.ndarray, float]:
    image = io.read(path)
    if image.axes != "ZYX":
        raise InputError(f"{path}: a training stack must have axes ZYX, got {image.axes}")
    if image.data.shape[0] < 2:
        raise InputError(f"{path}: a training stack needs at least 2 planes, got {image.data.shape[0]}")
    return np.asarray(image.data, np.float32), float(image.spacing_zyx[0])


def clean_path(path: Path) -> Path:
    """The simulator's noise-free stack beside a measured one: ``<root>/<modality>_clean/<name>``."""
    return path.parent.parent / f"{path.parent.name}_clean" / path.name


def _on_measured_scale(clean: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """The clean stack mapped onto the measured stack's scale by one least-squares gain and offset (camera
    quantum efficiency / gain and offset: exact for expectation values)."""
    gain, offset = gain_offset(clean, measured)
    return (clean * np.float32(gain) + np.float32(offset)).astype(np.float32)


def _prepared(stack: np.ndarray, config: DeepZDataConfig, clean: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Aligned and EDF-normalised stack, its normalised EDF image (steps 1-3), and the clean stack (if given)
    moved and normalised like the measured one."""
    from widefield3d.prep.align import align_stack, rigid_warp
    from widefield3d.prep.normalise import edf_normalisation

    aligned = stack
    if clean is not None:
        clean = _on_measured_scale(clean, stack)
    if config.align != "none":
        aligned, transforms = align_stack(stack, method=config.align)
        if clean is not None:
            clean = np.stack([rigid_warp(plane, *t) for plane, t in zip(clean, transforms)])
    norm, edf = edf_normalisation(aligned, saturate_fraction=config.saturate_fraction)
    return norm.apply(aligned), norm.apply(edf), None if clean is None else norm.apply(clean)


def _plane_norms(stack: np.ndarray, config: DeepZDataConfig) -> np.ndarray | None:
    """``(Z, 2)`` ``(background, scale)`` of each whole plane of an EDF-normalised stack against itself (NaN where
    the triangle threshold finds no foreground), for ``normalise_against="input"``; else None."""
    from widefield3d.prep.normalise import triangle_normalisation

    if config.normalise_against == "edf":
        return None
    out = np.full((len(stack), 2), np.nan, np.float32)
    for i, plane in enumerate(stack):
        try:
            norm = triangle_normalisation(plane, saturate_fraction=config.saturate_fraction)
        except InputError:
            continue
        out[i] = norm.background, norm.scale
    return out


def _read_target_source(path: Path, config: DeepZDataConfig) -> np.ndarray | None:
    if config.target_source == "measured":
        return None
    source = clean_path(path)
    if not source.exists():
        raise InputError(f"{source}: target_source='clean' needs the simulator's noise-free stack here")
    clean, _ = _read_stack(source)
    return clean


def _cover(mask: np.ndarray, config: DeepZDataConfig, name: Path) -> list[tuple[int, int]]:
    from widefield3d.prep.cover import patch_cover

    if min(mask.shape) < config.patch_px:
        raise InputError(f"{name}: field {mask.shape} is smaller than patch_px={config.patch_px}")
    return patch_cover(mask, patch=config.patch_px, overlap=config.cover_overlap)


def _input_planes(crop: np.ndarray, config: DeepZDataConfig) -> np.ndarray:
    """The middle plane (highest standard deviation) and up to ``planes_each_side`` planes on each side of it."""
    from widefield3d.prep.focus import sharpest_plane

    middle = sharpest_plane(crop)
    return np.arange(max(0, middle - config.planes_each_side), min(len(crop), middle + config.planes_each_side + 1))


def _choose_pairs(z_in: np.ndarray, z_target: np.ndarray, inputs: np.ndarray, config: DeepZDataConfig,
                  rng: np.random.Generator) -> list[tuple[int, int, float]]:
    """For each input plane, ``targets_per_input`` random target planes with ``|dz| <= range_um``."""
    out = []
    for i in inputs:
        dz = z_target - z_in[i]
        allowed = np.flatnonzero(np.abs(dz) <= config.range_um + 1e-6)
        for t in rng.choice(allowed, size=min(config.targets_per_input, len(allowed)), replace=False):
            out.append((int(i), int(t), float(dz[t])))
    return out


def _widefield_regions(path: Path, config: DeepZDataConfig, rng: np.random.Generator):
    """Yield ``(input crop, target crop, pairs, plane norms)`` of every region of one wide-field stack (Deep-Z);
    the norms (:func:`_plane_norms`) are the same for every region of the field."""
    from widefield3d.prep.mask import foreground_mask

    raw, dz = _read_stack(path)
    stack, edf, clean = _prepared(raw, config, _read_target_source(path, config))
    target = stack if clean is None else clean
    z = np.arange(len(stack)) * dz
    p = config.patch_px
    norms = _plane_norms(stack, config)
    for y0, x0 in _cover(foreground_mask(edf), config, path):
        crop = stack[:, y0:y0 + p, x0:x0 + p]
        yield (crop, target[:, y0:y0 + p, x0:x0 + p], _choose_pairs(z, z, _input_planes(crop, config), config, rng),
               None if norms is None else np.column_stack([norms, norms[:, 0]]))


def _register(moving: np.ndarray, fixed: np.ndarray, how: str) -> np.ndarray:
    """Homography of ``moving`` onto ``fixed`` by the chosen ``registration``."""
    from widefield3d.prep.projective import register_projective, register_translation

    if how == "translation":
        return register_translation(moving, fixed)
    try:
        return register_projective(moving, fixed)
    except InputError:
        if how != "auto":
            raise
        return register_translation(moving, fixed)


def _confocal_regions(wf_path: Path, conf_path: Path, config: DeepZDataConfig, rng: np.random.Generator):
    """Yield ``(wide-field crop, confocal crop, pairs, plane norms)`` of every region of one field (Deep-Z+); the
    confocal target keeps its own background (0 after its EDF normalisation) and takes the input plane's scale."""
    from widefield3d.prep.focus import focus_zero
    from widefield3d.prep.mask import foreground_mask
    from widefield3d.prep.projective import warp_projective

    wf_raw, dz_wf = _read_stack(wf_path)
    conf_raw, dz_conf = _read_stack(conf_path)
    wf, wf_edf, _ = _prepared(wf_raw, config)
    conf, conf_edf, conf_clean = _prepared(conf_raw, config, _read_target_source(conf_path, config))
    conf = conf if conf_clean is None else conf_clean
    if config.registration != "none":
        try:
            matrix = _register(conf_edf, wf_edf, config.registration)
        except InputError as err:
            raise RegistrationError(str(err)) from None
        conf = warp_projective(conf, matrix, wf_edf.shape)
        conf_edf = warp_projective(conf_edf, matrix, wf_edf.shape)
        overlap = warp_projective(np.ones(conf_raw.shape[1:], np.float32), matrix, wf_edf.shape) > 0.999
    elif conf.shape[1:] != wf.shape[1:]:
        raise InputError(f"{conf_path}: registration='none' needs equal plane sizes, got {conf.shape[1:]} and "
                         f"{wf.shape[1:]}")
    else:
        overlap = np.ones(wf_edf.shape, bool)
    z_wf, z_conf = np.arange(len(wf)) * dz_wf, np.arange(len(conf)) * dz_conf
    p = config.patch_px
    norms = _plane_norms(wf, config)
    if norms is not None:
        norms = np.column_stack([norms, np.zeros(len(norms), np.float32)])
    for y0, x0 in _cover(foreground_mask(wf_edf) & overlap, config, wf_path):
        window = (slice(y0, y0 + p), slice(x0, x0 + p))
        wf_crop, conf_crop = wf[(slice(None), *window)], conf[(slice(None), *window)]
        zero_wf = zero_conf = 0.0
        if config.axial == "focus":
            zero_wf = focus_zero(wf_crop, z_wf, reference=wf_edf[window])
            zero_conf = focus_zero(conf_crop, z_conf, reference=conf_edf[window])
        yield wf_crop, conf_crop, _choose_pairs(z_wf - zero_wf, z_conf - zero_conf, _input_planes(wf_crop, config),
                                                config, rng), norms


def build_pairs(data_dir: str | Path, config: DeepZDataConfig | None = None, *, progress: bool = True) -> PairSet:
    """All training pairs of a directory of stacks (see the module docstring for every step).

    Parameters
    ----------
    data_dir : path
        ``widefield/`` (+ ``confocal/``) sub-directories, or the wide-field stacks themselves.
    config : DeepZDataConfig
        Patch size, planes, targets, axial range, normalisation, seed.
    progress : bool
        Show a progress bar over the fields.

    Returns
    -------
    PairSet
        Stacks normalised to the paper's scale (background 0, 1% of the foreground above 1).

    Raises
    ------
    InputError
        Missing or unreadable data, stacks that are not ``ZYX``, fields smaller than the patch, or no pairs.
    """
    config = config or DeepZDataConfig()
    files = find_stacks(data_dir, config.target)[: config.max_fields]
    rng = np.random.default_rng(config.seed)
    inputs, targets, pairs, dpm, norms, skipped = [], [], [], [], [], []
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("preparing training pairs", total=len(files))
        for wf_path, conf_path in files:
            regions = (_widefield_regions(wf_path, config, rng) if conf_path is None
                       else _confocal_regions(wf_path, conf_path, config, rng))
            try:
                for x, y, chosen, plane_norms in regions:
                    if plane_norms is not None:  # input planes the triangle threshold cannot normalise: no pairs
                        chosen = [c for c in chosen if np.isfinite(plane_norms[c[0], 1])]
                    if not chosen:
                        continue
                    r = len(inputs)
                    inputs.append(np.ascontiguousarray(x))
                    targets.append(inputs[-1] if y is x else np.ascontiguousarray(y))
                    pairs += [(r, i, t) for i, t, _ in chosen]
                    dpm += [d for _, _, d in chosen]
                    if plane_norms is not None:
                        norms += [plane_norms[i] for i, _, _ in chosen]
            except RegistrationError as err:
                skipped.append(f"{wf_path.name}: {err}")
            bar.advance(task)
    if not pairs:
        reason = f"; skipped: {skipped[0]}" if skipped else " (no foreground found in any field)"
        raise InputError(f"{data_dir}: no training pairs{reason}")
    return PairSet(inputs, targets, np.array(pairs, np.int64), np.array(dpm, np.float32), config.range_um,
                   tuple(skipped), np.array(norms, np.float32) if norms else None)
