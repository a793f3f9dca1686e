"""Adversarial and pixel losses of the shared GAN loop.

In all three papers the discriminator ends in a sigmoid, so its scores are probabilities in (0, 1):

- least-squares GAN (Deep-Z eq. 4-5, WFCON-Net eq. 1): ``D`` pushes real scores to 1 and fake ones to 0 with
  squared errors; ``G`` pushes fake scores to 1.
- binary cross-entropy GAN (MFPINet eq. 7-8): ``D`` minimises ``-log D(real) - log(1 - D(fake))``; ``G`` uses the
  non-saturating ``-log D(G(x))``.

Deep-Z writes both LSGAN terms with a factor 1/(2N) instead of 1/N; the factor 1/2 multiplies the whole loss,
which Adam's update does not see (it is invariant to a constant scale of the loss), so the plain means are used.
The cross-entropy losses are evaluated in float32 with scores clamped to ``[EPS, 1 - EPS]`` so that mixed
precision and saturated sigmoids never give ``inf``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-7
"""Clamp of the discriminator probabilities in the cross-entropy losses (so ``log`` stays finite)."""


def lsgan_discriminator_loss(real_score: Tensor, fake_score: Tensor) -> Tensor:
    """``mean((D(real) - 1)^2) + mean(D(fake)^2)``."""
    return ((real_score.float() - 1) ** 2).mean() + (fake_score.float() ** 2).mean()


def lsgan_generator_loss(fake_score: Tensor) -> Tensor:
    """``mean((D(G(x)) - 1)^2)``."""
    return ((fake_score.float() - 1) ** 2).mean()


def _log(p: Tensor) -> Tensor:
    return torch.log(p.float().clamp(EPS, 1 - EPS))


def bce_discriminator_loss(real_score: Tensor, fake_score: Tensor) -> Tensor:
    """``-mean(log D(real)) - mean(log(1 - D(fake)))``, in float32, scores clamped to ``[EPS, 1 - EPS]``."""
    return -_log(real_score).mean() - _log(1 - fake_score.float()).mean()


def bce_generator_loss(fake_score: Tensor) -> Tensor:
    """``-mean(log D(G(x)))`` (the non-saturating generator loss), in float32, clamped like the discriminator's."""
    return -_log(fake_score).mean()


def pixel_loss(fake: Tensor, target: Tensor, kind: str = "l1") -> Tensor:
    """Mean absolute (``"l1"``) or mean squared (``"l2"``) error, in float32."""
    diff = fake.float() - target.float()
    if kind == "l1":
        return diff.abs().mean()
    if kind == "l2":
        return (diff**2).mean()
    raise ValueError(f"pixel loss {kind!r} is not 'l1' or 'l2'")


def multiscale_pixel_loss(fake: Tensor, target: Tensor, kind: str = "l1", scales=(1,)) -> Tensor:
    """Mean of :func:`pixel_loss` over lateral average-pooling factors ``scales`` (1 = the pixels themselves).

    At a factor ``s`` both images are averaged over ``s x s`` blocks in Y, X (Z is kept for 3D batches), so a spot
    placed a pixel off, or light spread over the right neighbourhood, is still rewarded: on sparse targets (beads,
    nuclei) a per-pixel loss alone is nearly minimal for an output that leaves the spots out.
    """
    total = fake.new_zeros((), dtype=torch.float32)
    for s in scales:
        if s == 1:
            a, b = fake, target
        elif fake.ndim == 4:
            a, b = F.avg_pool2d(fake.float(), s), F.avg_pool2d(target.float(), s)
        elif fake.ndim == 5:
            a, b = F.avg_pool3d(fake.float(), (1, s, s)), F.avg_pool3d(target.float(), (1, s, s))
        else:
            raise ValueError(f"multi-scale pixel loss needs 4D or 5D batches, got {fake.ndim}D")
        total = total + pixel_loss(a, b, kind)
    return total / len(scales)


def mean_absolute_error(fake: Tensor, target: Tensor) -> float:
    """The default validation metric: ``mean(|fake - target|)`` as a Python float."""
    return float(pixel_loss(fake, target, "l1"))
