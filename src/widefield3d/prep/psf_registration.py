"""PSF-based registration of a wide-field and a confocal z-stack (WFCON-Net, Eq. 2-3).

The wide-field stack ``y`` is modelled as the confocal stack ``x`` blurred by a kernel ``f`` (the "PSF" linking the
two modalities), ``y = f * x + n``. ``f`` is estimated by

    min_f  ||f * x - y||_2^2 + lam ||grad f||_1 + mu (sum f - 1)^2          (paper: lam = 1, mu = 10)

with the first-order primal-dual algorithm of Chambolle and Pock, and the shift between the stacks is the position
of the maximum of ``f`` relative to its centre (refined to sub-voxel precision by a 3-point parabola per axis).

Solver
------
``K = [grad; A]`` stacks the forward-difference gradient (isotropic TV: the sum over voxels of the 2-norm of the
3-vector of differences, which anisotropic TV would turn into flat-topped kernels; ``f`` is zero outside its box, so
voxels on the faces are penalised like the others) and the convolution ``A f = f * x``; the data and TV terms form
``F(K f)`` and the energy term ``G(f) = mu (sum f - 1)^2``, so that every proximal operator is closed-form:

- TV block: projection of the dual variable onto the ball ``|p| <= lam`` per voxel;
- data block: ``prox_{s F*}(q) = (q - s y) / (1 + s / 2)``;
- ``prox_{t G}(v) = v - 2 t mu (S - 1)`` with ``S = (sum v + 2 t mu n) / (1 + 2 t mu n)``, ``n`` = kernel voxels.

(The paper lets ``K`` be the gradient alone and folds the data term into ``G``; with a kernel much smaller than the
stack that proximal step has no closed form, hence the stacked operator.) The two blocks have very different norms
(``||grad||^2 <= 12``, ``||A||`` set by the data), so each dual block gets its own step (block
preconditioning, Pock & Chambolle 2011): ``sigma_i = 0.495 / (tau ||K_i||^2)``, so that
``tau (sigma_1 ||grad||^2 + sigma_2 ||A||^2) = 0.99 < 1`` (convergence condition), with ``tau = 10 / ||A||^2``;
``||A||`` is estimated by power iteration (+5 %), ``theta = 1``. ``tau`` sets the primal/dual balance: with
``tau = 1 / ||A||`` the kernel still sat at a corner of its box after 200 iterations on simulated tissue; ``tau`` of
1 to 10 over ``||A||^2`` found the right peak, and 10 reached the lowest objective on a known Gaussian kernel.
The default 200 iterations are a fixed count (``tol = 0``): on noisy simulated pairs, running to convergence (600)
made the peak *less* accurate, so the count acts as a regulariser too (docs/registration.md).

Boundary handling: the convolution is computed with FFTs over the stack (circular), but only the *valid* region of
``y`` enters the data term (voxels at least half a kernel from every face), where circular and linear convolution
agree; so no wrap-around or padding assumption touches the fit.

Preparation (the paper does not state one): ``y`` is scaled to the mean of ``x`` (so that ``sum f = 1`` holds for the
raw pair); then the same lateral high-pass (minus a Gaussian blur of sigma ``highpass_px``, 3 pixels by default) is
applied to both, and both are divided by the 99.9th percentile of ``|x|`` times ``sqrt(N)`` (``N`` = voxels in the
valid region), which makes the data term the *mean* squared residual of [0, 1]-scaled stacks, so that ``lam`` and
``mu`` weigh the same whatever the stack size. Filtering both stacks with one linear
shift-invariant filter keeps ``y = f * x`` exact, but removes the wide-field haze and far out-of-focus light, which a
kernel of a few µm cannot represent: without it the fitted kernel piles up at the faces of its box on simulated
thick tissue, whatever the shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from widefield3d.errors import InputError
from widefield3d.progress import progress_bar

HIGHPASS_PX = 3.0
"""Default lateral sigma (pixels) of the high-pass applied to both stacks before the fit."""

FACE_MARGIN = 1
"""Voxels next to the faces of the kernel box left out of the search for its maximum."""

PSF_SHAPE = (15, 31, 31)
"""Default kernel size (z, y, x voxels); the shift found is at most half of it minus ``FACE_MARGIN`` per axis."""


@dataclass(frozen=True)
class Shift:
    """Displacement that, applied to the confocal stack, aligns it with the wide-field stack.

    Positive values move content towards larger indices (same convention as
    ``skimage.registration.phase_cross_correlation(widefield, confocal)``). ``psf`` is the estimated kernel
    (``None`` for cross-correlation).
    """

    dz_um: float
    dy_um: float
    dx_um: float
    dz_px: float
    dy_px: float
    dx_px: float
    psf: np.ndarray | None = None

    @property
    def px(self) -> tuple[float, float, float]:
        """(dz, dy, dx) in voxels."""
        return (self.dz_px, self.dy_px, self.dx_px)

    @property
    def um(self) -> tuple[float, float, float]:
        """(dz, dy, dx) in µm."""
        return (self.dz_um, self.dy_um, self.dx_um)


def _shift(px, spacing_um, psf=None) -> Shift:
    pz, py, px = (float(v) for v in px)
    dz, dy, dx = (float(s) for s in spacing_um)
    return Shift(pz * dz, py * dy, px * dx, pz, py, px, psf=psf)


def _pair(a, b, names=("widefield", "confocal")) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    for arr, name in zip((a, b), names):
        if arr.ndim != 3:
            raise InputError(f"{name}: expected a (Z, Y, X) stack, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: contains NaN or Inf")
    if a.shape != b.shape:
        raise InputError(f"{names[0]} {a.shape} and {names[1]} {b.shape} stacks must have the same shape")
    return a, b


def _spacing(spacing_um) -> tuple[float, float, float]:
    try:
        sp = tuple(float(s) for s in spacing_um)
    except (TypeError, ValueError):
        raise InputError(f"spacing_um: expected (dz, dy, dx) in µm, got {spacing_um!r}") from None
    if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"spacing_um: expected three positive (dz, dy, dx) in µm, got {spacing_um!r}")
    return sp


def _prepare(confocal: np.ndarray, widefield: np.ndarray, highpass_px: float | None,
             psf_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Put the pair on one scale and remove the haze the finite kernel cannot explain (see the module doc)."""
    mx, my = float(confocal.mean()), float(widefield.mean())
    if np.ptp(confocal) <= 0 or np.ptp(widefield) <= 0 or mx <= 0 or my <= 0:
        raise InputError("confocal and widefield stacks must be non-constant with positive mean intensity")
    x = confocal.astype(np.float32)
    y = widefield * np.float32(mx / my)
    if highpass_px:
        sigma = (0.0, highpass_px, highpass_px)
        x = x - ndimage.gaussian_filter(x, sigma, mode="reflect")
        y = y - ndimage.gaussian_filter(y, sigma, mode="reflect")
    scale = float(np.percentile(np.abs(x), 99.9))
    if scale <= 0:
        raise InputError("confocal: no structure left after the high-pass filter; nothing to register")
    scale *= np.sqrt(np.prod([n - 2 * (p // 2) for n, p in zip(x.shape, psf_shape)]))  # data term -> a mean
    return (x / scale).astype(np.float32), (y / scale).astype(np.float32)


class _Convolution:
    """``A f = (f * x)`` on the valid region of ``x`` for a centred kernel of odd shape ``psf_shape`` (FFT)."""

    def __init__(self, x: np.ndarray, psf_shape: tuple[int, int, int]):
        self.shape = x.shape
        self.psf_shape = psf_shape
        self.half = tuple(p // 2 for p in psf_shape)
        self.valid = tuple(slice(h, n - h) for h, n in zip(self.half, self.shape))
        self.x_hat = sfft.rfftn(x, workers=-1)

    def _embed(self, f: np.ndarray) -> np.ndarray:
        big = np.zeros(self.shape, dtype=np.float32)
        big[tuple(slice(0, p) for p in self.psf_shape)] = f
        return np.roll(big, tuple(-h for h in self.half), axis=(0, 1, 2))

    def forward(self, f: np.ndarray) -> np.ndarray:
        full = sfft.irfftn(self.x_hat * sfft.rfftn(self._embed(f), workers=-1), s=self.shape, workers=-1)
        return full[self.valid].astype(np.float32)

    def adjoint(self, r: np.ndarray) -> np.ndarray:
        big = np.zeros(self.shape, dtype=np.float32)
        big[self.valid] = r
        corr = sfft.irfftn(np.conj(self.x_hat) * sfft.rfftn(big, workers=-1), s=self.shape, workers=-1)
        corr = np.roll(corr, self.half, axis=(0, 1, 2))
        return corr[tuple(slice(0, p) for p in self.psf_shape)].astype(np.float32)

    def norm(self, iterations: int = 30, seed: int = 0) -> float:
        """Largest singular value, by power iteration on ``A^T A`` (5 % safety margin)."""
        v: np.ndarray = np.random.default_rng(seed).random(self.psf_shape).astype(np.float32)
        s = 0.0
        for _ in range(iterations):
            w = self.adjoint(self.forward(v))
            s = float(np.linalg.norm(w))
            if s == 0:
                raise InputError("confocal: stack is empty; nothing to register")
            v = w / s
        return 1.05 * np.sqrt(s)


def _grad(f: np.ndarray) -> np.ndarray:
    """Forward differences (z, y, x) of ``f`` padded with zeros, on the ``(n + 1)^3`` grid of the padded box.

    Every voxel of ``f`` differs from zero outside the box on both sides, so voxels on the faces of the box are
    penalised like the others. Shape ``(3, nz + 1, ny + 1, nx + 1)``.
    """
    big = np.pad(f, 1)
    base = big[:-1, :-1, :-1]
    return np.stack([big[1:, :-1, :-1] - base, big[:-1, 1:, :-1] - base, big[:-1, :-1, 1:] - base])


def _grad_adjoint(p: np.ndarray) -> np.ndarray:
    """``grad^T p`` (minus the divergence) for :func:`_grad`."""
    big = np.zeros(tuple(n + 1 for n in p.shape[1:]), dtype=p.dtype)
    big[:-1, :-1, :-1] -= p.sum(axis=0)
    big[1:, :-1, :-1] += p[0]
    big[:-1, 1:, :-1] += p[1]
    big[:-1, :-1, 1:] += p[2]
    return big[1:-1, 1:-1, 1:-1]


TAU_SCALE = 10.0
"""Primal step ``tau = TAU_SCALE / ||A||^2`` (chosen on simulated pairs, see the module doc)."""

CHECK_EVERY = 10
"""Iterations between two evaluations of the objective for the stopping test."""

GRAD_NORM_SQ = 12.0
"""Bound on ``||grad||^2`` for 3D forward differences (4 per axis)."""


def objective(f: np.ndarray, confocal: np.ndarray, widefield: np.ndarray, *, lam: float = 1.0,
              mu: float = 10.0, highpass_px: float | None = HIGHPASS_PX) -> float:
    """Value of Eq. 2 for kernel ``f`` on the pair prepared as :func:`estimate_psf` fits it."""
    y, x = _pair(widefield, confocal)
    x, y = _prepare(x, y, highpass_px, np.shape(f))
    return _objective(np.asarray(f, np.float32), _Convolution(x, np.shape(f)), y, lam, mu)


def _objective(f, conv: _Convolution, y, lam, mu) -> float:
    r = conv.forward(f) - y[conv.valid]
    tv = float(np.sqrt((_grad(f) ** 2).sum(axis=0)).sum())
    return float((r.astype(np.float64) ** 2).sum() + lam * tv + mu * (float(f.sum()) - 1.0) ** 2)


def _psf_shape(psf_shape, stack_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(p) for p in psf_shape)
    except (TypeError, ValueError):
        raise InputError(f"psf_shape: expected three odd sizes (z, y, x), got {psf_shape!r}") from None
    if len(shape) != 3 or any(p < 1 or p % 2 == 0 for p in shape):
        raise InputError(f"psf_shape: expected three odd positive sizes (z, y, x), got {psf_shape!r}")
    if any(p >= n for p, n in zip(shape, stack_shape)):
        raise InputError(f"psf_shape {shape} must be smaller than the stack {tuple(stack_shape)} along every axis")
    return shape


def estimate_psf(
    confocal,
    widefield,
    *,
    psf_shape: tuple[int, int, int] = PSF_SHAPE,
    lam: float = 1.0,
    mu: float = 10.0,
    iterations: int = 200,
    tol: float = 0.0,
    highpass_px: float | None = HIGHPASS_PX,
    progress: bool = False,
    history: list | None = None,
) -> np.ndarray:
    """Kernel ``f`` with ``widefield ~ f * confocal``, by Chambolle-Pock on Eq. 2 of WFCON-Net.

    Parameters
    ----------
    confocal, widefield : array (Z, Y, X)
        The pair, same shape and voxel grid; any intensity scale (normalised inside, see the module doc).
    psf_shape : (int, int, int)
        Odd kernel size in voxels (z, y, x); must be smaller than the stack. Its centre is zero shift.
    lam, mu : float
        Weights of the TV term and of the energy term ``(sum f - 1)^2`` (paper: 1 and 10).
    iterations : int
        Number of primal-dual iterations (at most, with ``tol``).
    tol : float
        If positive, stop when the objective changed by at most ``tol`` (relative) over the last ``CHECK_EVERY``
        iterations; 0 (default) runs all ``iterations``, which regularise the fit (see the module doc).
    highpass_px : float or None
        Lateral sigma (pixels) of the Gaussian whose blur is subtracted from both stacks before the fit
        (removes the wide-field haze, see the module doc); None or 0 fits the raw pair.
    progress : bool
        Show a progress bar.
    history : list, optional
        If given, the objective value is appended every iteration (for diagnostics; costs one convolution).

    Returns
    -------
    numpy.ndarray
        float32 kernel of ``psf_shape``.
    """
    y, x = _pair(widefield, confocal)
    shape = _psf_shape(psf_shape, x.shape)
    if lam < 0 or mu < 0:
        raise InputError(f"lam and mu must be non-negative, got lam={lam}, mu={mu}")
    if iterations < 1:
        raise InputError(f"iterations must be at least 1, got {iterations}")
    x, y = _prepare(x, y, highpass_px, shape)
    conv = _Convolution(x, shape)
    y_valid = y[conv.valid]
    norm_a = conv.norm()
    tau = TAU_SCALE / norm_a**2
    sigma_grad = 0.495 / (tau * GRAD_NORM_SQ)
    sigma_data = 0.495 / (tau * norm_a**2)
    n = float(np.prod(shape))

    f = np.full(shape, 1.0 / n, dtype=np.float32)
    f_bar = f.copy()
    p = np.zeros_like(_grad(f))  # dual of the TV term
    q = np.zeros_like(y_valid)  # dual of the data term
    last = _objective(f, conv, y, lam, mu) if tol > 0 else np.inf
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("estimating PSF", total=iterations)
        for it in range(1, iterations + 1):
            if lam > 0:
                p += sigma_grad * _grad(f_bar)
                p /= np.maximum(1.0, np.sqrt((p**2).sum(axis=0)) / lam)[None]
            q = (q + sigma_data * (conv.forward(f_bar) - y_valid)) / (1 + sigma_data / 2)
            v = f - tau * (_grad_adjoint(p) + conv.adjoint(q))
            total = (float(v.sum()) + 2 * tau * mu * n) / (1 + 2 * tau * mu * n)
            f_new = (v - 2 * tau * mu * (total - 1.0)).astype(np.float32)
            f_bar = 2 * f_new - f
            f = f_new
            bar.advance(task)
            check = tol > 0 and it % CHECK_EVERY == 0
            if history is not None or check:
                value = _objective(f, conv, y, lam, mu)
                if history is not None:
                    history.append(value)
                if check:
                    if abs(last - value) <= tol * abs(value):
                        break
                    last = value
    return f


def _parabola_peak(f: np.ndarray, margin: int = FACE_MARGIN) -> tuple[float, float, float]:
    """Sub-voxel position of the maximum of ``f`` away from the faces of its box.

    The voxels within ``margin`` of a face (along an axis longer than ``2 margin + 1``) are left out of the search:
    they absorb the part of the wide-field PSF that falls outside the box and can outgrow the true peak. The
    integer maximum is refined by a 3-point parabola per axis (clipped to +-0.5 voxel).
    """
    inner = tuple(slice(margin, n - margin) if n > 2 * margin + 1 else slice(None) for n in f.shape)
    sub = f[inner]
    idx = tuple(int(i) + (s.start or 0) for i, s in zip(np.unravel_index(int(np.argmax(sub)), sub.shape), inner))
    pos = []
    for axis in range(3):
        i = idx[axis]
        if 0 < i < f.shape[axis] - 1:
            lo = list(idx)
            hi = list(idx)
            lo[axis] -= 1
            hi[axis] += 1
            a, b, c = float(f[tuple(lo)]), float(f[idx]), float(f[tuple(hi)])
            denom = a - 2 * b + c
            delta = 0.5 * (a - c) / denom if denom < 0 else 0.0
            pos.append(i + float(np.clip(delta, -0.5, 0.5)))
        else:
            pos.append(float(i))
    z, y, x = pos
    return z, y, x


def register_psf(
    widefield,
    confocal,
    *,
    spacing_um,
    psf_shape: tuple[int, int, int] = PSF_SHAPE,
    lam: float = 1.0,
    mu: float = 10.0,
    iterations: int = 200,
    tol: float = 0.0,
    highpass_px: float | None = HIGHPASS_PX,
    progress: bool = False,
) -> Shift:
    """Shift between a wide-field and a confocal stack from the maximum of their estimated PSF.

    The kernel of :func:`estimate_psf` peaks at ``centre + d`` when the wide-field content sits ``d`` voxels
    further along each axis than the confocal content; ``d`` is refined with a 3-point parabola per axis.
    ``spacing_um = (dz, dy, dx)`` converts it to µm. The detectable shift is at most half of ``psf_shape``.
    The other arguments are those of :func:`estimate_psf`.
    Returns a :class:`Shift` carrying the kernel; ``apply_shift(confocal, shift)`` aligns the pair.
    """
    sp = _spacing(spacing_um)
    f = estimate_psf(confocal, widefield, psf_shape=psf_shape, lam=lam, mu=mu, iterations=iterations, tol=tol,
                     highpass_px=highpass_px, progress=progress)
    peak = _parabola_peak(f)
    return _shift([pk - s // 2 for pk, s in zip(peak, f.shape)], sp, psf=f)


def register_xcorr(widefield, confocal, *, spacing_um, upsample: int = 10, phase: bool = False) -> Shift:
    """Cross-correlation baseline (``skimage.registration.phase_cross_correlation``); sign as :func:`register_psf`.

    ``phase=False`` (the paper's baseline): plain cross-correlation (``normalization=None``) of the stacks scaled to
    zero mean and unit variance, no window. ``phase=True``: phase correlation (``normalization="phase"``, the
    whitened spectrum) of the stacks multiplied by a 3D Hann window (which it needs on non-periodic crops). Both are
    circular (FFT) and refined to ``1 / upsample`` voxel by the matrix-multiply DFT of Guizar-Sicairos et al.
    """
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    sp = _spacing(spacing_um)
    y, x = _pair(widefield, confocal)
    if upsample < 1:
        raise InputError(f"upsample must be at least 1, got {upsample}")
    standard = [(a.astype(np.float64) - a.mean()) / max(float(a.std()), 1e-30) for a in (y, x)]
    if phase:  # the window spans the axes longer than 1 (a single plane's Hann window along z would be zero)
        hann = window("hann", tuple(n for n in y.shape if n > 1)).reshape(y.shape)
        standard = [a * hann for a in standard]
    shift, _, _ = phase_cross_correlation(*standard, upsample_factor=upsample,
                                          normalization="phase" if phase else None)
    return _shift(shift, sp)


def apply_shift(stack, shift: Shift | tuple[float, float, float], *, order: int = 1) -> np.ndarray:
    """Move ``stack`` (Z, Y, X) by ``shift`` voxels (a :class:`Shift` or (dz, dy, dx)); edges filled by nearest.

    ``apply_shift(confocal, register_psf(widefield, confocal, ...))`` puts the confocal stack on the wide-field
    grid. Linear interpolation (``order=1``) keeps intensities non-negative. float32 out.
    """
    arr = np.asarray(stack, dtype=np.float32)
    if arr.ndim != 3:
        raise InputError(f"stack: expected (Z, Y, X), got shape {arr.shape}")
    d = shift.px if isinstance(shift, Shift) else tuple(float(s) for s in shift)
    if len(d) != 3:
        raise InputError(f"shift: expected (dz, dy, dx), got {shift!r}")
    return ndimage.shift(arr, d, order=order, mode="nearest").astype(np.float32)
