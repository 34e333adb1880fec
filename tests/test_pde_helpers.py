"""keras_kan.pde: partial derivatives against closed forms, weighted sums, RAD resampling."""

import numpy as np
import pytest
from conftest import to_numpy
from keras import ops

from keras_kan import pde


def _fn(x):
    """`u = sin(2 x_0) exp(x_1) + x_0 x_1^2`, `(B, 2) -> (B, 1)`."""
    return ops.sin(2 * x[:, :1]) * ops.exp(x[:, 1:]) + x[:, :1] * x[:, 1:] ** 2


X = np.random.default_rng(0).uniform(-1, 1, (7, 2)).astype("float32")
A, B = X[:, :1].astype(np.float64), X[:, 1:].astype(np.float64)


@pytest.mark.parametrize("i, expected", [
    (0, 2 * np.cos(2 * A) * np.exp(B) + B**2),
    (1, np.sin(2 * A) * np.exp(B) + 2 * A * B),
])
def test_partial_matches_the_closed_form(i, expected):
    np.testing.assert_allclose(to_numpy(pde.partial(_fn, X, i)), expected, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.slow  # a derivative of a derivative: 2-6 s to trace on a loaded machine
@pytest.mark.parametrize("i, j, expected", [
    (0, 1, 2 * np.cos(2 * A) * np.exp(B) + 2 * B),
    (1, 0, 2 * np.cos(2 * A) * np.exp(B) + 2 * B),
    (0, 0, -4 * np.sin(2 * A) * np.exp(B)),
    (1, 1, np.sin(2 * A) * np.exp(B) + 2 * A),
])
def test_mixed_partial_matches_the_closed_form(i, j, expected):
    np.testing.assert_allclose(to_numpy(pde.mixed_partial(_fn, X, i, j)), expected,
                               rtol=1e-5, atol=1e-5)


def test_partial_rejects_a_bad_index():
    with pytest.raises(ValueError, match="`i`"):
        pde.partial(_fn, X, 2)


def test_weighted_sum():
    terms = {"pde": ops.convert_to_tensor(2.0), "bc": ops.convert_to_tensor(3.0)}
    assert float(to_numpy(pde.weighted_sum(terms, {"pde": 0.01}))) == pytest.approx(3.02)
    assert float(to_numpy(pde.weighted_sum([1.0, 2.0], [2.0, 0.5]))) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="do not exist"):
        pde.weighted_sum(terms, {"ic": 1.0})
    with pytest.raises(ValueError, match="weights"):
        pde.weighted_sum([1.0], [1.0, 2.0])


def test_resample_prefers_large_residuals():
    candidates = np.linspace(0, 1, 1000)[:, None].astype("float32")
    residual = (candidates[:, 0] > 0.9).astype(np.float64) * 100.0  # only the last 10%
    rows = pde.resample(residual, candidates, 100, k=1.0, c=0.0, seed=0)
    assert rows.shape == (100, 1) and rows.dtype == np.float32
    assert np.all(rows > 0.9)  # c = 0: only where the residual is not 0
    assert len(np.unique(rows)) == 100 and np.all(np.isin(rows, candidates))
    uniform = pde.resample(residual, candidates, 500, k=1.0, c=1e6, seed=0)
    assert 0.05 < np.mean(uniform > 0.9) < 0.16  # c large: nearly uniform (10%)
    called = pde.resample(lambda x: ops.sum(x, axis=1), candidates, 10, seed=1)
    assert called.shape == (10, 1)
    with pytest.raises(ValueError, match="exceeds"):
        pde.resample(residual, candidates, 2000)
    with pytest.raises(ValueError, match="finite"):
        pde.resample(np.full(1000, np.nan), candidates, 3)
