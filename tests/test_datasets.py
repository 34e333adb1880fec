"""keras_kan.datasets.create_dataset: pykan's points, shapes, splits and errors."""

import numpy as np
import pytest

from keras_kan.datasets import create_dataset
from keras_kan.rng import torch_rand


def test_points_follow_pykans_column_order_and_ranges():
    (x, y), (xt, yt) = create_dataset(lambda v: v[:, :1] * 2.0, n_var=2, n_samples=10,
                                      ranges=[(0, 1), (-3, -1)], seed=3, test_split=0.3,
                                      dtype="float64")
    assert x.shape == (7, 2) and xt.shape == (3, 2) and y.shape == (7, 1)
    # pykan draws, per variable, its train column then its test column
    columns = torch_rand(3, (7,), (3,), (7,), (3,))
    np.testing.assert_allclose(x[:, 0], np.float32(columns[0]), rtol=1e-7)
    np.testing.assert_allclose(xt[:, 1], np.float32(columns[3] * 2 - 3), rtol=1e-6)
    np.testing.assert_allclose(y[:, 0], 2 * x[:, 0])
    assert np.all((x[:, 1] >= -3) & (x[:, 1] < -1))


def test_same_seed_same_points_other_seed_other_points():
    f = lambda v: np.sin(v).sum(axis=1)  # noqa: E731
    first = create_dataset(f, n_samples=50, seed=1)[0][0]
    np.testing.assert_array_equal(first, create_dataset(f, n_samples=50, seed=1)[0][0])
    assert not np.allclose(first, create_dataset(f, n_samples=50, seed=2)[0][0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(test_split=1.0), "test_split"),
    (dict(ranges=(1, 0)), "ranges"),
    (dict(n_samples=1), "n_samples"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_dataset(lambda v: v[:, 0], **kwargs)


def test_f_must_return_one_value_per_point():
    with pytest.raises(ValueError, match="returned 1 values for 100 points"):
        create_dataset(lambda v: np.zeros(1), n_samples=100)
