"""May a checkpoint be continued? Its trainer config, method config and validation data must be the ones given now,
apart from the fields listed here; otherwise "best" would compare scores on different runs or validation sets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pydantic
from torch import Tensor

from widefield3d.errors import InputError

RESUMABLE_FIELDS = ("iterations", "device", "time_budget_minutes", "channels_last", "prefetch_batches")
"""TrainerConfig fields that may change when a run is resumed."""

METHOD_KEYS_FREE_ON_RESUME = ("trainer", "widefield3d_version", "provenance.data_dir")
"""Method-config entries (dotted paths) that may change on resume: the trainer's own (checked separately), the
package version and the data directory's path (data may move; changed data show in the validation fingerprint)."""


def validation_fingerprint(batches: Sequence[tuple[Tensor, Tensor]]) -> str:
    """SHA-256 of the validation batches' shapes and bytes: a resumed run must validate on the same data."""
    digest = hashlib.sha256()
    for batch in batches:
        for t in batch:
            t = t.detach().to("cpu").contiguous()
            digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def check_resumable(path: Path, checkpoint: dict, config: pydantic.BaseModel, method_config: dict | None, *,
                    fingerprint: str, with_discriminator: bool, free_method_keys: Sequence[str] = ()) -> None:
    """InputError naming ``path`` unless ``checkpoint`` (read from ``path``) continues a run with this trainer
    ``config``, ``method_config`` (outside :data:`METHOD_KEYS_FREE_ON_RESUME` and ``free_method_keys``),
    validation ``fingerprint`` and (``with_discriminator``) a discriminator or none."""
    differences = _config_differences(json.loads(checkpoint["trainer_config"]), config)
    if differences:
        raise InputError(f"{path}: trainer config differs from the checkpoint's ({'; '.join(differences)});"
                         f" only {', '.join(RESUMABLE_FIELDS)} may change on resume")
    saved_method = checkpoint.get("method_config")
    if saved_method is not None and method_config is not None:
        changed = _method_differences(json.loads(saved_method), method_config,
                                      (*METHOD_KEYS_FREE_ON_RESUME, *free_method_keys))
        if changed:
            raise InputError(f"{path}: the method/data config differs from the checkpoint's "
                             f"({'; '.join(changed[:4])}{'; ...' if len(changed) > 4 else ''}); start a new run")
    if checkpoint.get("validation_fingerprint", fingerprint) != fingerprint:
        raise InputError(f"{path}: the validation data differ from the checkpoint's (changed training data "
                         "or data settings?); start a new run")
    if (checkpoint["discriminator"] is None) == with_discriminator:
        raise InputError(f"{path}: the checkpoint was trained "
                         f"{'without' if checkpoint['discriminator'] is None else 'with'} a discriminator")


def _config_differences(saved: dict, config: pydantic.BaseModel) -> list[str]:
    now = config.model_dump(mode="json")
    default = type(config).model_fields
    return [f"{k}: {saved.get(k, default[k].default)!r} -> {now[k]!r}" for k in now
            if k not in RESUMABLE_FIELDS and saved.get(k, default[k].default) != now[k]]


def _method_differences(saved: dict, now: dict, free: Sequence[str]) -> list[str]:
    """Differences between two method configs outside the dotted keys ``free``."""
    def flat(d: dict, prefix: str = "") -> dict:
        out: dict = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            if key in free:
                continue
            out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
        return out

    a, b = flat(saved), flat(now)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
