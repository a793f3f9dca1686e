"""The method contract: every shipped model loads through zoo.load_model, configs validate strictly with one line,
older config shapes migrate, apply_overrides changes dotted settings."""

from __future__ import annotations

import json
import shutil

import pytest

from widefield3d import zoo
from widefield3d.errors import InputError
from widefield3d.methods import deepz, mfpi, volume, wfcon
from widefield3d.methods._base import LoadedModel, apply_overrides

METHODS = (deepz, mfpi, volume, wfcon)


@pytest.mark.parametrize("name", [m.name for m in zoo.list_models()])
def test_every_shipped_model_loads_with_the_current_schema(name):
    model = zoo.load_model(name)
    assert isinstance(model, LoadedModel) and model.config.schema_version == zoo.SCHEMA_VERSION
    raw = zoo.read_config(zoo.ZOO_DIR / name)
    assert raw["schema_version"] == zoo.SCHEMA_VERSION and set(raw) >= {
        "method", "description", "network", "data", "trainer", "provenance"}
    assert "/" not in json.dumps(raw.get("provenance", {}))  # no machine paths


def test_every_method_has_the_contract_names():
    for module in METHODS:
        assert {"Config", "train", "load", "METHOD"} <= set(dir(module)), module.__name__
        assert module.Config().method == module.METHOD
    for predict in (deepz.refocus, mfpi.multifocal, wfcon.confocal, volume.reconstruct):
        assert predict.__annotations__["return"] == "io.Image", predict.__name__


def test_load_model_is_strict_with_one_line(tmp_path):
    model = tmp_path / "m"
    shutil.copytree(zoo.ZOO_DIR / "wfcon-60x14-tissue", model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "data": {**config["data"], "crop": 3}}))
    with pytest.raises(InputError, match=r"config.json: invalid model config \(wfcon.data.crop: Extra inputs") as err:
        zoo.load_model(model)
    assert "\n" not in str(err.value)
    (model / "config.json").write_text(json.dumps({**config, "method": "nope"}))
    with pytest.raises(InputError, match="invalid model config") as err:
        zoo.load_model(model)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="invalid MFPIConfig"):
        mfpi.Config.validated({"schema_version": 1, "planes": 3}, "test")  # a flat key in the current shape


def test_flat_configs_of_the_first_models_migrate():
    old_mfpi = {"method": "mfpi", "widefield3d_version": "0.1.0", "planes": 11, "width": 0.25, "patch_size": 64,
                "epochs": 20.0, "patches_per_epoch": 640, "batch_size": 4, "lr": 0.001, "validations_per_epoch": 4,
                "device": "cpu", "adversarial": True, "training_fields": ["a.tif"], "validation_fields": ["b.tif"],
                "data": "train_data", "z_step_um": 2.7}
    cfg = mfpi.Config.model_validate(old_mfpi)
    assert cfg.network.width == 0.25 and cfg.network.gan and cfg.data.patch_size == 64 and cfg.data.z_step_um == 2.7
    assert (cfg.trainer.iterations, cfg.trainer.lr_halve_every, cfg.trainer.validate_every) == (3200, 320, 40)
    assert cfg.provenance == {"training_fields": ["a.tif"], "validation_fields": ["b.tif"], "data_dir": "train_data"}
    old_wfcon = {"method": "wfcon", "network": "2d", "width_multiplier": 0.25, "crop_zyx": [12, 64, 64],
                 "tile_zyx": [48, 256, 256], "z_step_um": 0.5, "trainer": {"iterations": 112}}
    cfg = wfcon.Config.model_validate(old_wfcon)
    assert cfg.network.kind == "2d" and cfg.data.crop_zyx == (12, 64, 64) and cfg.trainer.iterations == 112
    old_dip = {"method": "volume-dip", "description": "d", "net": {"channels": [8, 16]}, "epoch_mse": [0.1],
               "pretraining": {"n_volumes": 10, "batch_size": 2, "epochs": 1, "shape": [3, 8, 8], "seed": 0,
                               "net": {"channels": [8, 16]}}, "seconds": 1.0}
    cfg = volume.Config.model_validate(old_dip)
    assert cfg.network.channels == (8, 16) and cfg.data.n_volumes == 10 and cfg.trainer.batch_size == 2
    assert cfg.provenance == {"epoch_mse": [0.1], "seconds": 1.0}
    with pytest.raises(ValueError, match="colour"):  # a key the old shape never had is still refused
        wfcon.Config.model_validate({**old_wfcon, "colour": 1})


def test_apply_overrides():
    cfg = wfcon.Config()
    changed = apply_overrides(cfg, {"trainer.device": "cpu", "network.kind": "2d", "data.augment": None})
    assert changed.trainer.device == "cpu" and changed.network.kind == "2d" and changed.data.augment
    assert cfg.trainer.device == "auto"  # a copy
    with pytest.raises(InputError, match="WFConConfig has no setting 'trainer.lr'") as err:
        apply_overrides(cfg, {"trainer.lr": 1.0})
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match=r"--flag: invalid WFConConfig \(trainer.iterations: Input should be"):
        apply_overrides(cfg, {"trainer.iterations": 0}, "--flag")
