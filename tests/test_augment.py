"""Dihedral augmentation: one random flip/rotation, the same for input and target."""

import numpy as np

from widefield3d.prep.augment import random_dihedral


def test_same_transform_for_every_array_and_all_eight_reached():
    image = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b, c = random_dihedral(rng, image, image + 100, image[0])
        np.testing.assert_array_equal(b, a + 100)
        np.testing.assert_array_equal(c, a[0])  # 2D and 3D arrays get the same Y/X transform
        assert a.flags.c_contiguous and sorted(a.ravel()) == sorted(image.ravel())
        seen.add(a.tobytes())
    assert len(seen) == 8


def test_draw_order_is_turns_then_flip():
    image = np.arange(9.0).reshape(3, 3)
    (out,) = random_dihedral(np.random.default_rng(5), image)
    reference = np.random.default_rng(5)
    turns, flip = int(reference.integers(4)), bool(reference.integers(2))
    expected = np.rot90(image, turns)
    np.testing.assert_array_equal(out, expected[:, ::-1] if flip else expected)
