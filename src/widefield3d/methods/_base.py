"""The contract every method module follows: the shape of its config, the loaded model and config overrides.

A method module (``deepz``, ``mfpi``, ``wfcon``, ``volume``) exposes ``Config`` (a :class:`MethodConfig`),
``train``, ``load`` (returning a :class:`LoadedModel`) and one predict function that returns a
:class:`widefield3d.io.Image` with axes and spacing. A model directory's ``config.json`` is the method's
``Config`` as JSON (:func:`widefield3d.zoo.write_config` adds the package version and ``schema_version``);
:func:`widefield3d.zoo.load_model` opens any of them, and :func:`apply_overrides` is how a command-line flag or a
``--config`` file changes a config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from widefield3d.errors import InputError
from widefield3d.zoo import SCHEMA_VERSION

C = TypeVar("C", bound="MethodConfig")


class MethodConfig(BaseModel):
    """What every method's config holds: the schema version, the method's name, a one-line description, the
    network, the data (how training pairs are made) and trainer settings, and the training's provenance.

    A mapping without ``schema_version`` is of the shape written before it existed and goes through
    :meth:`migrate` first; one with it is validated strictly (unknown keys are refused). The package version that
    :func:`widefield3d.zoo.write_config` adds is dropped.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(SCHEMA_VERSION, ge=SCHEMA_VERSION, le=SCHEMA_VERSION,
                                description="shape of this config (config.json files without it are migrated)")
    method: str
    description: str = Field("", description="one line shown by `widefield3d models`")
    network: BaseModel
    data: BaseModel
    trainer: BaseModel
    provenance: dict[str, Any] = Field(default_factory=dict, description="filled by train(): what it was trained on")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _migrate_unversioned(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            return raw
        raw = {k: v for k, v in raw.items() if k != "widefield3d_version"}
        return raw if "schema_version" in raw else cls.migrate(raw)

    @classmethod
    def migrate(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Settings of the shape before ``schema_version`` -> this shape (a method whose shape changed overrides
        this; keys it does not know are left for validation to refuse)."""
        return raw

    @classmethod
    def validated(cls: type[C], raw: Mapping[str, Any], where: str) -> C:
        """``raw`` as this config, or an InputError of one line that names ``where`` and the first problem."""
        try:
            return cls.model_validate(dict(raw))
        except pydantic.ValidationError as err:
            raise InputError(f"{where}: invalid {cls.__name__} ({one_line(err)})") from None

    @classmethod
    def read(cls: type[C], name_or_dir: str | Path) -> tuple[Path, C]:
        """A shipped model's name or a model directory -> its directory and validated config."""
        from widefield3d import zoo

        method = cls.model_fields["method"].default
        path = zoo.resolve_model(name_or_dir, method)
        return path, cls.validated(zoo.read_config(path, method), str(path / zoo.CONFIG_NAME))


def one_line(err: pydantic.ValidationError) -> str:
    """The first error of a pydantic validation as ``location: message``."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def apply_overrides(config: C, overrides: Mapping[str, Any], where: str = "overrides") -> C:
    """A copy of ``config`` with the dotted settings ``overrides`` changed, validated.

    Example: ``apply_overrides(cfg, {"trainer.device": "cpu", "trainer.iterations": 100})``. ``None`` values
    are skipped (a command-line option that was not given). An unknown key or a bad value raises an InputError of
    one line naming it.
    """
    data = config.model_dump()
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise InputError(f"{where}: {type(config).__name__} has no setting {key!r}")
        node[leaf] = value
    return type(config).validated(data, where)


@dataclass
class LoadedModel:
    """A trained network (eval mode, CPU) with the config it was trained with and its model directory."""

    generator: Any  # a torch.nn.Module; torch is imported lazily by the methods
    config: MethodConfig
    path: Path | None = None

    @property
    def method(self) -> str:
        return self.config.method
