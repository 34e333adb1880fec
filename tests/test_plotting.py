import keras
import numpy as np
import pytest

import keras_kan
from keras_kan.layers import KANDense

matplotlib = pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from keras_kan.network import chain_inputs, edge_values  # noqa: E402
from keras_kan.plotting import plot_kan  # noqa: E402


def _x(n=200, features=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, features)).astype("float32")


def _edge_labels(fig):
    return sorted(ax.get_label() for ax in fig.axes if ax.get_label().startswith("kan_edge_"))


@pytest.mark.slow
def test_plot_is_created_and_saved(tmp_path):
    model = keras_kan.KAN([2, 3, 1], seed=0)
    path = tmp_path / "nested" / "dir" / "kan.png"
    fig = plot_kan(model, _x(), to_file=path, title="a [2, 3, 1] KAN")
    assert isinstance(fig, Figure)
    assert path.exists() and path.stat().st_size > 5000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_label() for ax in fig.axes].count("kan_network") == 1
    assert len(_edge_labels(fig)) == 2 * 3 + 3 * 1


@pytest.mark.parametrize("extension, magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
@pytest.mark.slow
def test_other_formats(tmp_path, extension, magic):
    model = keras_kan.KAN([2, 2, 1], seed=0)
    path = tmp_path / f"kan.{extension}"
    plot_kan(model, _x(), to_file=str(path))
    assert path.read_bytes()[: len(magic)] == magic


def test_insets_are_the_unmasked_edges():
    model = keras_kan.KAN([2, 3, 1], seed=0)
    first, second = model.layers
    mask0 = np.array([[1, 0, 1], [1, 1, 0]], "float32")
    mask1 = np.array([[1], [0], [1]], "float32")
    first.edge_mask.assign(mask0)
    second.edge_mask.assign(mask1)
    fig = plot_kan(model, _x())
    expected = sorted([f"kan_edge_0_{i}_{j}" for i, j in zip(*np.nonzero(mask0))]
                      + [f"kan_edge_1_{i}_{j}" for i, j in zip(*np.nonzero(mask1))])
    assert _edge_labels(fig) == expected


def test_no_pyplot_figure_and_options():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    model = keras_kan.KAN([3, 2], seed=1)
    fig = plot_kan(model, _x(features=3), figsize=(5, 3), show_scores=False, max_points=16,
                   input_names=["a", "b", "$c$"], output_names=["u", "v"])
    assert plt.get_fignums() == before  # nothing registered with pyplot
    assert tuple(fig.get_size_inches()) == (5.0, 3.0)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"a", "b", "$c$", "u", "v"} <= texts
    curve = fig.axes[1].lines[0]
    assert len(curve.get_xdata()) == 16
    assert np.all(np.diff(curve.get_xdata()) >= 0)  # sorted inputs


def test_curves_follow_the_data_range():
    model = keras_kan.KAN([1, 1], seed=0)
    x = np.linspace(0.2, 0.6, 50)[:, None].astype("float32")
    fig = plot_kan(model, x)
    xs = fig.axes[1].lines[0].get_xdata()
    np.testing.assert_allclose([xs.min(), xs.max()], [0.2, 0.6], atol=1e-6)


@pytest.mark.slow
def test_wide_layer_and_non_kan_layers_between():
    inputs = keras.Input((4,))
    h = KANDense(3, seed=0)(inputs)
    h = keras.layers.Dense(2)(h)
    outputs = KANDense(1, seed=1)(h)
    model = keras.Model(inputs, outputs)
    fig = plot_kan(model, _x(features=4))
    assert len(_edge_labels(fig)) == 4 * 3 + 2 * 1
    # A layer too wide for insets still draws its edges as lines.
    wide = keras_kan.KAN([40, 12, 1], seed=0)
    fig = plot_kan(wide, _x(features=40), figsize=(8, 4))
    assert len(_edge_labels(fig)) == 12
    assert len(fig.axes[0].collections[0].get_segments()) >= 40 * 12


def test_edge_values_match_the_layer():
    model = keras_kan.KAN([2, 3, 2], seed=0)
    first = model.layers[0]
    x = _x(64)
    first.update_grid(x)  # non-uniform knots: the general basis path
    inputs = chain_inputs(model, model.layers, x.astype("float64"))
    np.testing.assert_allclose(inputs[0], x, atol=0)
    phi = keras.ops.convert_to_numpy(first.edge_activations(x))
    np.testing.assert_allclose(edge_values(first, inputs[0]), phi, atol=1e-5)
    np.testing.assert_allclose(inputs[1], phi.sum(axis=1), atol=1e-5)


def test_bad_inputs(tmp_path):
    model = keras_kan.KAN([2, 3, 1], seed=0)
    dense = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="no KANDense"):
        plot_kan(dense, _x())
    with pytest.raises(ValueError, match="keras.Model"):
        plot_kan(model.layers[0], _x())
    with pytest.raises(ValueError, match="3 features"):
        plot_kan(model, _x(features=3))
    with pytest.raises(ValueError, match="shape"):
        plot_kan(model, np.zeros(5))
    with pytest.raises(ValueError, match="non-finite"):
        plot_kan(model, np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="at least 2"):
        plot_kan(model, _x(1))
    with pytest.raises(ValueError, match="max_points"):
        plot_kan(model, _x(), max_points=1)
    with pytest.raises(ValueError, match="figsize"):
        plot_kan(model, _x(), figsize=(0, 3))
    with pytest.raises(ValueError, match="input_names"):
        plot_kan(model, _x(), input_names=["only one"])
    with pytest.raises(ValueError, match="extension"):
        plot_kan(model, _x(), to_file=tmp_path / "kan.nope")
