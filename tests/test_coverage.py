"""Grid coverage: the first-training-call warning and `grid_range="data"` (keras_kan.coverage).

References are independent NumPy computations on the same batch: the fraction
of values outside `grid_range`, and `linspace(min, max, G + 1)` per feature.
"""

import re
import warnings

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_kan import KANDense, fit_lbfgs, symbolic_edges, update_grids
from keras_kan.callbacks import GridUpdate

G, K = 5, 3


def _model(grid_range=(-1.0, 1.0), n=3):
    return keras.Sequential([keras.Input((n,)),
                             KANDense(4, grid_size=G, name="first", seed=0,
                                      grid_range=grid_range),
                             KANDense(1, grid_size=G, name="second", seed=1,
                                      grid_range=grid_range)])


def _data(scale, n=3, rows=64):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, n)) * scale).astype("float32")
    return x, np.sin(x).sum(axis=1, keepdims=True).astype("float32")


def _coverage_warnings(record, name):
    return [str(w.message) for w in record
            if issubclass(w.category, UserWarning) and f"KANDense '{name}'" in str(w.message)]


@pytest.mark.parametrize("run_eagerly", [False, True])
@pytest.mark.slow
def test_fit_warns_once_naming_layer_and_fraction(run_eagerly):
    x, y = _data(3.0)
    expected = float(np.mean(np.abs(x) > 1.0))  # one batch: the whole set
    assert expected > 0.5
    model = _model()
    model.compile("adam", "mse", run_eagerly=run_eagerly)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    found = _coverage_warnings(record, "first")
    assert len(found) == 1, found
    assert f"{expected:.0%} of its inputs" in found[0]
    assert model.layers[0].outside_grid_fraction == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("run_eagerly", [False, True])
@pytest.mark.slow
def test_no_warning_for_a_layer_of_symbolic_edges_only(run_eagerly):
    """Off-grid inputs matter only to splines: a layer whose every edge is symbolic
    (what `auto_symbolic` leaves, whose joint refit may move a layer's inputs) records
    the fraction but does not warn; the layer before it, with splines, still does."""
    x, y = _data(3.0)
    model = _model()
    second = model.layers[1]
    for i in range(4):
        symbolic_edges.set_edge(second, i, 0, "x", params=(1.0, 0.0, 1.0, 0.0))
    model.compile("adam", "mse", run_eagerly=run_eagerly)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(x * 30, y, batch_size=len(x), epochs=2, verbose=0)
    assert _coverage_warnings(record, "second") == []
    assert len(_coverage_warnings(record, "first")) == 1
    assert second.outside_grid_fraction > 0.5


def test_no_warning_inside_the_grid_and_one_per_direct_call():
    x, y = _data(0.3)
    x = np.clip(x, -0.95, 0.95)
    layer = KANDense(2, seed=0, name="inside")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        layer(x, training=True)
        layer(x * 10, training=True)  # measured once: the first training call only
        layer(x * 10)  # inference is never measured
    assert _coverage_warnings(record, "inside") == []
    assert layer.outside_grid_fraction == pytest.approx(float(np.mean(np.abs(x) > 1)), abs=1e-6)

    wide = KANDense(2, seed=0, name="wide")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        wide(x * 10, training=True)
        wide(x * 10, training=True)
    assert len(_coverage_warnings(record, "wide")) == 1


@pytest.mark.slow
def test_grid_update_at_step_zero_silences_the_warning():
    x, y = _data(3.0)
    model = _model()
    model.compile("adam", "mse")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0,
                  callbacks=[GridUpdate(x, every=1, stop_after=1)])
    assert _coverage_warnings(record, "first") == []
    assert model.layers[0].outside_grid_fraction == 0.0


def _expected_data_knots(x):
    lo, hi = x.min(axis=0), x.max(axis=0)
    steps = np.arange(-K, G + K + 1) / G
    return lo[:, None] + (hi - lo)[:, None] * steps[None, :]


@pytest.mark.parametrize("run_eagerly", [False, True])
@pytest.mark.slow
def test_data_grid_follows_the_first_batch(run_eagerly):
    x, y = _data(3.0)
    model = _model("data")
    layer = model.layers[0]
    initial = to_numpy(layer.grid)
    np.testing.assert_allclose(initial, _expected_data_knots(np.tile([[-1.0], [1.0]], 3)),
                               atol=1e-6)  # built on pykan's (-1, 1)
    model.compile("adam", "mse", run_eagerly=run_eagerly)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0)
        model.fit(x, y, batch_size=len(x), epochs=2, verbose=0)  # must not move it again
    assert _coverage_warnings(record, "first") == []
    np.testing.assert_allclose(to_numpy(layer.grid), _expected_data_knots(x[:32]),
                               rtol=1e-5, atol=1e-5)
    assert layer.uniform_grid  # evenly spaced: the fast basis stays valid
    second = model.layers[1]
    assert not np.allclose(to_numpy(second.grid), np.tile(initial[:1], (4, 1)))
    # The trained model's predictions use the adapted grid.
    np.testing.assert_allclose(to_numpy(model.predict(x, verbose=0)),
                               to_numpy(model(x)), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_data_grid_saves_and_loads(tmp_path):
    x, y = _data(3.0)
    model = _model("data")
    model.compile("adam", "mse")
    model.fit(x, y, batch_size=len(x), epochs=2, verbose=0)
    assert model.layers[0].get_config()["grid_range"] == "data"
    path = str(tmp_path / "data_grid.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[0].grid_range == "data"
    np.testing.assert_allclose(to_numpy(loaded.layers[0].grid), to_numpy(model.layers[0].grid))
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6)
    # A loaded (trained) layer keeps its grid when training resumes on other data.
    grid = to_numpy(loaded.layers[0].grid)
    loaded.compile("adam", "mse")
    loaded.fit(x * 0.1, y, batch_size=len(x), epochs=1, verbose=0)
    np.testing.assert_allclose(to_numpy(loaded.layers[0].grid), grid)
    # An untrained layer's config round-trips too.
    fresh = KANDense.from_config(KANDense(3, grid_range="data").get_config())
    assert fresh.grid_range == "data"


@pytest.mark.slow
def test_data_grid_with_fit_lbfgs():
    x, y = _data(3.0)
    model = _model("data")
    model.compile(loss="mse")
    fit_lbfgs(model, x, y, steps=2, verbose=0)
    np.testing.assert_allclose(to_numpy(model.layers[0].grid), _expected_data_knots(x),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_fit_lbfgs_warns_before_its_compiled_objective():
    x, y = _data(3.0)
    model = _model()
    model.compile(loss="mse")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit_lbfgs(model, x, y, steps=2, verbose=0)
    assert len(_coverage_warnings(record, "first")) == 1


@pytest.mark.slow
def test_default_grid_stays_fixed():
    x, y = _data(3.0)
    model = _model()
    grid = to_numpy(model.layers[0].grid)
    model.compile("adam", "mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    np.testing.assert_allclose(to_numpy(model.layers[0].grid), grid)  # pykan's behaviour


@pytest.mark.slow
def test_constant_feature_gets_a_finite_grid():
    x = np.ones((8, 2), "float32")
    layer = KANDense(1, grid_range="data", seed=0)
    layer(x, training=True)
    knots = to_numpy(layer.grid)
    assert np.all(np.isfinite(knots)) and np.all(np.diff(knots, axis=1) > 0)
    np.testing.assert_allclose(knots[:, K], 0.0, atol=1e-6)
    np.testing.assert_allclose(knots[:, -K - 1], 2.0, atol=1e-6)


@pytest.mark.parametrize("bad", ["dat", "Data", ("a", 1), (1.0, -1.0), None])
def test_bad_grid_range(bad):
    with pytest.raises(ValueError, match="grid_range"):
        KANDense(2, grid_range=bad)


def test_hyperkan_passes_data_grid_range():
    keras_tuner = pytest.importorskip("keras_tuner")
    from keras_kan.tuner import HyperKAN

    model = HyperKAN((3,), 1, depth=1, hidden_units=4, grid_range="data",
                     seed=0).build(keras_tuner.HyperParameters())
    assert all(layer.grid_range == "data" for layer in model.layers)
    with pytest.raises(ValueError, match="grid_range"):
        HyperKAN((3,), 1, grid_range="auto")


@pytest.mark.slow
def test_fit_lbfgs_with_grid_updates_does_not_warn():
    x, y = _data(3.0)
    model = _model()
    model.compile(loss="mse")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit_lbfgs(model, x, y, steps=2, verbose=0, update_grid=True)
    assert _coverage_warnings(record, "first") == []


# ----------------------------------------------- standardized scikit-learn sets
ROWS = 64  # one training batch: the rows the first training call sees


def _standardized(name):
    """The first `ROWS` rows of a bundled scikit-learn set (no download), standardized
    on the whole set, with a regression target (digits: the digit, scaled)."""
    datasets = pytest.importorskip("sklearn.datasets")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    data = {"diabetes": datasets.load_diabetes, "digits": datasets.load_digits}[name]()
    x = preprocessing.StandardScaler().fit_transform(data.data)[:ROWS].astype("float32")
    y = np.asarray(data.target[:ROWS], np.float64)
    return x, ((y - y.mean()) / y.std()).astype("float32")[:, None]


def _readme_kan(n, grid_range=(-1.0, 1.0)):
    """The README/benchmarks tabular KAN: `[Input, KANDense(8), KANDense(1)]`."""
    return keras.Sequential([keras.Input((n,)),
                             KANDense(8, name="first", seed=0, grid_range=grid_range),
                             KANDense(1, name="second", seed=1, grid_range=grid_range)])


def _fit_recording(model, x, y, run_eagerly):
    model.compile("adam", "mse", run_eagerly=run_eagerly)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    return _coverage_warnings(record, "first") + _coverage_warnings(record, "second")


@pytest.mark.parametrize("name", ["diabetes", "digits"])
@pytest.mark.parametrize("run_eagerly", [False, True])
@pytest.mark.slow
def test_standardized_bundled_sets_warn_unless_the_grid_follows_them(name, run_eagerly):
    """Standardizing, the tabular recipe's first step, puts a quarter to a third of the
    values outside the default (-1, 1): the plain default warns (first layer only), and
    `grid_range="data"` or `update_grids` beforehand leave nothing to warn of."""
    x, y = _standardized(name)
    expected = float(np.mean(np.abs(x) > 1.0))  # the first layer's grid interval is [-1, 1]
    assert 0.2 < expected < 0.5  # off the grid, and below the former threshold of one half

    model = _readme_kan(x.shape[1])
    found = _fit_recording(model, x, y, run_eagerly)
    assert len(found) == 1 and "KANDense 'first'" in found[0], found
    shown = float(re.search(r"(\d+)% of its inputs", found[0]).group(1))
    assert abs(shown - 100 * expected) <= 0.5 + 1e-6, (shown, expected)  # rounded
    assert model.layers[0].outside_grid_fraction == pytest.approx(expected, abs=1e-6)

    assert _fit_recording(_readme_kan(x.shape[1], "data"), x, y, run_eagerly) == []

    model = _readme_kan(x.shape[1])
    update_grids(model, x)
    assert _fit_recording(model, x, y, run_eagerly) == []
    assert model.layers[0].outside_grid_fraction == 0.0
