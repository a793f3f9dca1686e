"""Model files: a model is a directory with ``config.json`` + ``weights.safetensors``.

A trained model directory is the training output directory (it also holds ``log.csv`` and ``checkpoint.pt``).
Shipped models live in :data:`ZOO_DIR` (``widefield3d/model_zoo/<name>/``, with a README.md) and are found by
name. Weights are safetensors, never pickle; configs are JSON with the method's name, the package version and
:data:`SCHEMA_VERSION`. :func:`load_model` opens a model of any method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from widefield3d.errors import InputError

if TYPE_CHECKING:
    import pydantic

ZOO_DIR = Path(__file__).parent / "model_zoo"
"""Directory of the shipped models, one sub-directory per model."""

CONFIG_NAME = "config.json"
SCHEMA_VERSION = 1
"""Shape of a method config (:class:`widefield3d.methods._base.MethodConfig`); 1 added the key itself."""
WEIGHTS_NAME = "weights.safetensors"


@dataclass(frozen=True)
class ModelInfo:
    """A shipped model: its zoo name, method (e.g. ``"deepz"``), directory and one-line description."""

    name: str
    method: str
    path: Path
    description: str

    @property
    def size_mb(self) -> float:
        """Size of ``weights.safetensors`` in MB (10^6 bytes); 0 if missing."""
        weights = self.path / WEIGHTS_NAME
        return weights.stat().st_size / 1e6 if weights.exists() else 0.0


def write_config(directory: str | Path, method: str, config: dict) -> Path:
    """Write ``directory/config.json`` = ``{"method": method, "widefield3d_version": ..., "schema_version": ...,
    **config}`` atomically (``schema_version``: the config's own, else :data:`SCHEMA_VERSION`)."""
    from widefield3d import __version__
    from widefield3d.io import atomic_output

    path = Path(directory) / CONFIG_NAME
    content = {"method": method, "widefield3d_version": __version__,
               "schema_version": config.get("schema_version", SCHEMA_VERSION),
               **{k: v for k, v in config.items() if k not in ("method", "widefield3d_version", "schema_version")}}
    text = json.dumps(content, indent=2, default=str)
    with atomic_output(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def read_config(directory: str | Path, method: str | None = None) -> dict:
    """Read ``directory/config.json``; InputError if it is missing, not a JSON object, or (given ``method``) was
    written for another method."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise InputError(f"{path}: model config not found")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or "method" not in config:
        raise InputError(f"{path}: not a widefield3d model config (no 'method' entry)")
    if method is not None and config["method"] != method:
        raise InputError(f"{Path(directory)}: is a {config['method']!r} model, not a {method!r} model")
    return config


def read_settings(path: str | Path, what: str = "settings") -> dict:
    """Method settings from a YAML or JSON file (``--config``): a mapping, without the bookkeeping keys a model's
    ``config.json`` adds (``method``, ``widefield3d_version``), so a trained model's config can seed a new run.
    ``what`` names the settings in the one-line error (e.g. ``"DeepZConfig fields"``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--config {path}: file not found")
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise InputError(f"--config {path}: not valid {kind} ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: must hold a mapping of {what}")
    return {k: v for k, v in data.items() if k not in ("method", "widefield3d_version")}


def run_settings(config: str | Path | None, output: str | Path, resume: bool, what: str = "settings") -> dict:
    """The settings a training run starts from: the ``--config`` file if given, else (with ``--resume``) the model
    directory's own ``config.json`` if it exists, else none (the method's defaults).

    Every ``train`` command calls this first, so it also checks the model directory before any work
    (:func:`widefield3d.checks.check_model_dir`: a writable folder, no earlier checkpoint without ``resume``).
    """
    from widefield3d.checks import check_model_dir

    check_model_dir(output, resume=resume)
    if config is not None:
        return read_settings(config, what)
    if resume and (Path(output) / "config.json").is_file():
        return read_settings(Path(output) / "config.json", what)
    return {}


def save_weights(directory: str | Path, module) -> Path:
    """Write the module's state dict to ``directory/weights.safetensors`` atomically (contiguous CPU tensors)."""
    from safetensors.torch import save_file

    from widefield3d.io import atomic_output

    path = Path(directory) / WEIGHTS_NAME
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        tmp.chmod(0o644)  # safetensors creates the file owner-only; a model is meant to be shared
    return path


def load_weights(module, directory: str | Path):
    """Load ``directory/weights.safetensors`` into ``module`` (strict; one-line InputError on any mismatch).

    Tensors are copied onto the module's existing parameters, so the module keeps its device. Returns ``module``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise InputError(f"{path}: weights not found")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise InputError(f"{path}: unreadable weights ({err})") from None
    expected = module.state_dict()
    problems = []
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    shapes = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in tensors and tensors[k].shape != v.shape]
    if shapes:
        problems.append(f"shape (file vs network) {_few(shapes)}")
    if problems:
        raise InputError(f"{path}: weights do not fit the network: {'; '.join(problems)}")
    module.load_state_dict(tensors, strict=True)
    return module


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _is_model_dir(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def list_models() -> list[ModelInfo]:
    """The shipped models (sub-directories of :data:`ZOO_DIR` with a config and weights), sorted by name."""
    models = []
    if ZOO_DIR.is_dir():
        for path in sorted(p for p in ZOO_DIR.iterdir() if p.is_dir() and _is_model_dir(p)):
            config = read_config(path)
            models.append(ModelInfo(path.name, str(config["method"]), path, str(config.get("description", ""))))
    return models


def model_label(name_or_dir: str | Path) -> str:
    """How a results file names a model without a machine path: the zoo name of a shipped model, else the model
    directory's own name."""
    path = Path(name_or_dir)
    try:
        return path.resolve().relative_to(ZOO_DIR.resolve()).parts[0]
    except (ValueError, IndexError):
        return path.name


def resolve_model(name_or_dir: str | Path, method: str | None = None) -> Path:
    """A model directory (with config.json + weights.safetensors) or the name of a shipped model -> its directory.

    With ``method``, the model's config must name that method. Unknown names raise a one-line InputError that lists
    the shipped models.
    """
    path = Path(name_or_dir)
    if path.is_dir():
        if not _is_model_dir(path):
            raise InputError(f"{path}: not a model directory (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    else:
        available = [m.name for m in list_models() if method is None or m.method == method]
        if str(name_or_dir) not in available:
            listed = ", ".join(available) if available else "none"
            raise InputError(f"model {str(name_or_dir)!r}: no such directory or shipped model"
                             + (f" for {method!r}" if method else "") + f" (available: {listed})")
        path = ZOO_DIR / str(name_or_dir)
    read_config(path, method)
    return path


def load_model(name_or_dir: str | Path):
    """Open a model of any method: a shipped model's name or a model directory -> the method's
    :class:`~widefield3d.methods._base.LoadedModel`.

    The config is validated strictly against the method it names (older shapes are migrated first); a problem is
    one InputError line naming the file.

    Examples
    --------
    >>> model = load_model("wfcon-60x14-tissue")
    >>> type(model).__name__, model.config.method, model.path.name
    ('WFConModel', 'wfcon', 'wfcon-60x14-tissue')
    """
    import pydantic

    from widefield3d.methods._base import one_line

    path = resolve_model(name_or_dir)
    where = path / CONFIG_NAME
    try:
        config = _config_union().validate_python(read_config(path))
    except pydantic.ValidationError as err:
        raise InputError(f"{where}: invalid model config ({one_line(err)})") from None
    return method_modules()[config.method].load(path)


def method_modules() -> dict:
    """The method modules by their ``METHOD`` (a new method is added here)."""
    from widefield3d.methods import deepz, mfpi, volume, wfcon

    return {module.METHOD: module for module in (deepz, mfpi, volume, wfcon)}


def _config_union() -> pydantic.TypeAdapter:
    """The methods' configs as one pydantic union keyed on ``method``."""
    from typing import Annotated, Union

    import pydantic

    configs = tuple(module.Config for module in method_modules().values())
    return pydantic.TypeAdapter(Annotated[Union[configs], pydantic.Field(discriminator="method")])  # noqa: UP007
