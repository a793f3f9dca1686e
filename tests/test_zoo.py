"""Model files: config/weights round trips, strict loading, model resolution, the `models` command."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from widefield3d import zoo
from widefield3d.cli import main
from widefield3d.errors import InputError


def _net(width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 3, padding=1))


def _model_dir(path, method="deepz", description="test model", width=4):
    zoo.write_config(path, method, {"width": width, "description": description})
    zoo.save_weights(path, _net(width))
    return path


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    root = tmp_path / "zoo"
    _model_dir(root / "deepz-beads", "deepz", "Deep-Z on simulated beads")
    _model_dir(root / "mfpi-cells", "mfpi", "MFPINet on simulated cells")
    (root / "not-a-model").mkdir()
    monkeypatch.setattr(zoo, "ZOO_DIR", root)
    return root


def test_config_round_trip_and_method_check(tmp_path):
    path = zoo.write_config(tmp_path, "wfcon", {"width": 16, "normalise": [0.1, 99.9], "method": "ignored"})
    config = zoo.read_config(tmp_path, "wfcon")
    assert config["method"] == "wfcon" and config["width"] == 16 and config["normalise"] == [0.1, 99.9]
    assert config["widefield3d_version"] and json.loads(path.read_text()) == config
    with pytest.raises(InputError, match="is a 'wfcon' model, not a 'deepz' model"):
        zoo.read_config(tmp_path, "deepz")
    with pytest.raises(InputError, match="config not found"):
        zoo.read_config(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON"):
        zoo.read_config(tmp_path)


def test_weights_round_trip_and_mismatch(tmp_path):
    torch.manual_seed(1)
    net = _net()
    zoo.save_weights(tmp_path, net)
    other = zoo.load_weights(_net(), tmp_path)
    for (k, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    wrong_shape = r"do not fit the network: shape .*0\.weight \(4, 1, 3, 3\) vs \(8, 1, 3, 3\)"
    with pytest.raises(InputError, match=wrong_shape) as err:
        zoo.load_weights(_net(8), tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="missing 4.bias, 4.weight"):
        zoo.load_weights(nn.Sequential(*_net(), nn.ReLU(), nn.Conv2d(1, 1, 1)), tmp_path)
    with pytest.raises(InputError, match="unexpected 2.bias"):
        zoo.load_weights(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                                       nn.Conv2d(4, 1, 3, padding=1, bias=False)), tmp_path)


def test_resolve_model(tmp_path, fake_zoo):
    trained = _model_dir(tmp_path / "my-run", "deepz")
    assert zoo.resolve_model(trained) == trained
    assert zoo.resolve_model(str(trained), "deepz") == trained
    assert zoo.resolve_model("deepz-beads", "deepz") == fake_zoo / "deepz-beads"
    with pytest.raises(InputError, match="not a 'mfpi' model"):
        zoo.resolve_model(trained, "mfpi")
    with pytest.raises(InputError, match=r"'nope'.*\(available: deepz-beads, mfpi-cells\)") as err:
        zoo.resolve_model("nope")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match=r"for 'mfpi' \(available: mfpi-cells\)"):
        zoo.resolve_model("deepz-beads", "mfpi")
    with pytest.raises(InputError, match="not a model directory"):
        zoo.resolve_model(fake_zoo / "not-a-model")


def test_list_models(fake_zoo):
    models = zoo.list_models()
    assert [(m.name, m.method, m.description) for m in models] == [
        ("deepz-beads", "deepz", "Deep-Z on simulated beads"), ("mfpi-cells", "mfpi", "MFPINet on simulated cells")]
    size = (fake_zoo / "deepz-beads" / "weights.safetensors").stat().st_size
    assert models[0].size_mb == pytest.approx(size / 1e6) and size > 4 * (4 * 9 + 4 + 4 * 9 + 1)


def test_models_command(fake_zoo, capsys):
    main(["models", "--path"])
    assert capsys.readouterr().out.split() == [str(fake_zoo / "deepz-beads"), str(fake_zoo / "mfpi-cells")]
    main(["models"])
    out = capsys.readouterr().out
    assert "deepz-beads" in out and "MFPINet on simulated cells" in out


def test_models_command_runs_on_the_real_zoo(capsys):
    main(["models"])
    assert "shipped models" in capsys.readouterr().out


def test_read_settings_accepts_yaml_json_and_model_configs(tmp_path):
    from widefield3d.zoo import read_settings

    (tmp_path / "a.yaml").write_text("network: {width: 0.25}\ntrainer: {iterations: 10}\n")
    assert read_settings(tmp_path / "a.yaml") == {"network": {"width": 0.25}, "trainer": {"iterations": 10}}
    (tmp_path / "config.json").write_text('{"method": "deepz", "widefield3d_version": "0.1.0", "seed": 3}')
    assert read_settings(tmp_path / "config.json") == {"seed": 3}
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        read_settings(tmp_path / "bad.yaml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="must hold a mapping of DeepZConfig fields"):
        read_settings(tmp_path / "list.json", "DeepZConfig fields")
    with pytest.raises(InputError, match="file not found"):
        read_settings(tmp_path / "missing.yaml")
