"""How much a single image's own normalisation differs from its stack's EDF normalisation (docs/deepz.md,
"Normalisation: training and inference must agree").

(a) Training fields (a ``simulate dataset --preset deepz-20x075`` folder): for every plane, the scale of its own
    triangle normalisation over the scale of its stack's EDF (the paper's training reference), per field.
(b) The Fig. 4 tilted bead plane of ``deepz_beads.py`` (1024 px, seed 0): the image's own scale against that of an
    in-focus image of another bead slide (what ``refocus --reference`` uses there).

    python benchmarks/deepz_normalisation.py --data DIR [--fields 4]

Prints the numbers; no model is needed (a few seconds per field).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import deepz_beads
import numpy as np

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.methods.deepz_data import find_stacks
from widefield3d.optics.microscope import preset
from widefield3d.prep.normalise import edf_normalisation, triangle_normalisation
from widefield3d.sim.acquisition import fluorescence_plane
from widefield3d.sim.dataset import dataset_preset


def plane_scale_ratios(stack: np.ndarray) -> np.ndarray:
    """Own-normalisation scale of each plane over the EDF normalisation's scale (NaN: no foreground)."""
    reference = edf_normalisation(stack)[0].scale
    out = np.full(len(stack), np.nan)
    for i, plane in enumerate(stack):
        try:
            out[i] = triangle_normalisation(plane).scale / reference
        except InputError:
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="deepz-20x075 dataset folder")
    parser.add_argument("--fields", type=int, default=4)
    args = parser.parse_args()
    for path, _ in find_stacks(args.data, "widefield")[: args.fields]:
        ratios = plane_scale_ratios(np.asarray(io.read(path).data, np.float32))
        print(f"{path.name}: own scale / EDF scale, min {np.nanmin(ratios):.2f}, median {np.nanmedian(ratios):.2f}, "
              f"max {np.nanmax(ratios):.2f} over {np.isfinite(ratios).sum()} planes")
    m, camera = preset(deepz_beads.MICROSCOPE), dataset_preset("deepz-20x075").camera
    surfaces = argparse.Namespace(surface_px=1024, seed=0)
    sample = deepz_beads.surface_sample("tilted-beads", surfaces, m)
    surface = deepz_beads.camera_surface(sample.surface_um)
    focus = float(0.5 * (surface.min() + surface.max()))
    image = fluorescence_plane(sample, m, focus, camera=camera, seed=0).noisy.astype(np.float32)
    own = triangle_normalisation(image)
    reference = triangle_normalisation(deepz_beads.reference_image(surfaces, camera, m))
    print(f"Fig. 4 tilted plane: own scale {own.scale:.0f} ADU (background {own.background:.1f}); in-focus reference "
          f"image {reference.scale:.0f} ADU (background {reference.background:.1f}); "
          f"ratio {own.scale / reference.scale:.2f}")


if __name__ == "__main__":
    main()
