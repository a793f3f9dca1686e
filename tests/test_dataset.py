"""Simulated datasets: layout, metadata, pairing, resumability."""

import json

import numpy as np
import pytest

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.sim.dataset import DATASET_PRESETS, simulate_dataset


@pytest.fixture(autouse=True)
def _small_presets(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEFIELD3D_CACHE", str(tmp_path / "cache"))
    small = {name: p.model_copy(update={"field_px": 24}) for name, p in DATASET_PRESETS.items()}
    small["deepzplus-63x14"] = small["deepzplus-63x14"].model_copy(
        update={"sample_depth_um": 6.0, "kinds": ("nuclei",), "field_px": 96, "z_range_um": (-0.6, 0.6)})
    monkeypatch.setattr("widefield3d.sim.dataset.DATASET_PRESETS", small)


@pytest.mark.slow
def test_paired_dataset_has_same_fields_in_both_modalities(tmp_path):
    out = simulate_dataset("deepzplus-63x14", tmp_path / "d", n=2, seed=5, progress=False)
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["n"] == 2 and len(manifest["fields"]) == 2
    for folder in ("widefield", "confocal", "widefield_clean", "confocal_clean", "truth"):
        assert sorted(p.name for p in (out / folder).iterdir()) == ["field_0000.ome.tif", "field_0001.ome.tif"]
    wf = io.read(out / "widefield_clean" / "field_0000.ome.tif")
    cf = io.read(out / "confocal_clean" / "field_0000.ome.tif")
    gt = io.read(out / "truth" / "field_0000.ome.tif")
    assert wf.data.shape == cf.data.shape == gt.data.shape == (7, 96, 96)
    assert wf.spacing_um["Z"] == pytest.approx(0.2) and wf.spacing_um["X"] == pytest.approx(6.5 / 63)
    # both modalities see the same sample: their images correlate with each other
    assert np.corrcoef(wf.data.ravel(), cf.data.ravel())[0, 1] > 0.5


@pytest.mark.slow
def test_dataset_generation_is_resumable_and_deterministic(tmp_path):
    out = simulate_dataset("deepz-20x075", tmp_path / "d", n=1, seed=1, progress=False)
    first = io.read(out / "widefield" / "field_0000.ome.tif").data
    stamp = (out / "widefield" / "field_0000.ome.tif").stat().st_mtime_ns
    simulate_dataset("deepz-20x075", out, n=2, seed=1, progress=False)
    assert (out / "widefield" / "field_0000.ome.tif").stat().st_mtime_ns == stamp  # skipped, not redone
    again = simulate_dataset("deepz-20x075", tmp_path / "e", n=1, seed=1, progress=False)
    np.testing.assert_array_equal(first, io.read(again / "widefield" / "field_0000.ome.tif").data)
    assert io.read(out / "widefield" / "field_0001.ome.tif").data.shape == (41, 24, 24)


def test_dataset_errors(tmp_path):
    with pytest.raises(InputError, match="unknown dataset preset"):
        simulate_dataset("nope", tmp_path, n=1)
    with pytest.raises(InputError, match="at least 1"):
        simulate_dataset("deepz-20x075", tmp_path, n=0)
