"""Query sampling: one max-gradient + one random point per cell, exclusion mask, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from c4d_core.correspondence import sample_queries
from c4d_core.correspondence.queries import cell_occupancy
from c4d_core.errors import InputError


def _dots(h=100, w=120, cell=20, seed=0):
    """Flat grey image with one bright dot per cell at a known position."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 100, np.uint8)
    dots = []
    for cy in range(0, h, cell):
        for cx in range(0, w, cell):
            x, y = cx + rng.integers(5, cell - 5), cy + rng.integers(5, cell - 5)
            img[y, x] = 255
            dots.append((x, y))
    return img, np.array(dots, np.float32)


def test_max_gradient_point_next_to_each_dot():
    img, dots = _dots()
    uv = sample_queries(img, cell_px=20, rng=np.random.default_rng(1), min_gradient=1.0)
    # every dot has a sampled point within 1 px (Sobel peaks on the dot's neighbours)
    d = np.linalg.norm(uv[None] - dots[:, None], axis=-1).min(1)
    assert np.all(d <= 1.5)
    # at most two points per cell, and at least the random one
    occ_counts = np.zeros((5, 6), int)
    np.add.at(occ_counts, ((uv[:, 1] // 20).astype(int), (uv[:, 0] // 20).astype(int)), 1)
    assert occ_counts.max() <= 2 and occ_counts.min() >= 1
    assert len(uv) > 30 * 1.5


def test_flat_image_gives_random_points_only_and_is_seeded():
    img = np.full((64, 64, 3), 50, np.uint8)
    a = sample_queries(img, 16, np.random.default_rng(3), min_gradient=4.0)
    b = sample_queries(img, 16, np.random.default_rng(3), min_gradient=4.0)
    c = sample_queries(img, 16, np.random.default_rng(4), min_gradient=4.0)
    assert len(a) == 16 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_exclude_mask_respected():
    img, _ = _dots()
    excl = np.zeros(img.shape[:2], bool)
    excl[:, :60] = True
    uv = sample_queries(img, 20, np.random.default_rng(0), exclude_mask=excl)
    assert len(uv) > 0 and uv[:, 0].min() >= 60
    occ = cell_occupancy(uv, 100, 120, 20)
    assert not occ[:, :3].any() and occ[:, 3:].all()


@pytest.mark.parametrize("bad", [
    np.zeros((64, 64), np.uint8),  # grey
    np.zeros((64, 64, 1), np.uint8),  # grey with channel
    np.zeros((20, 64, 3), np.uint8),  # tiny
    np.full((64, 64, 3), np.nan, np.float32),  # NaN
    np.zeros((64, 64, 3), np.float32),  # wrong dtype
])
def test_bad_images(bad):
    with pytest.raises(InputError):
        sample_queries(bad)


def test_bad_exclude_mask_shape():
    with pytest.raises(InputError):
        sample_queries(np.zeros((64, 64, 3), np.uint8), exclude_mask=np.zeros((10, 10), bool))
