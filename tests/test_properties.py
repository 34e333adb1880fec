"""Property-based tests (hypothesis) over layer configurations, input shapes and data.

The examples come from the profile loaded in conftest.py: "ci" (default) is
derandomized with a bounded number of examples, so every run checks the same
cases; HYPOTHESIS_PROFILE=dev searches wider. Sizes are kept small so that
each backend runs the file in about a minute.
"""

import json

import keras
import numpy as np
import pytest
import reference
from conftest import to_numpy

from keras_kan import KAN, KANDense, KANRegularizer, prune, refine

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

ACTIVATIONS = ("silu", "tanh", "relu", "linear")


@st.composite
def layer_configs(draw, max_order=4):
    low = draw(st.floats(-3.0, 1.0, allow_nan=False, width=32))
    width = draw(st.floats(0.25, 4.0, allow_nan=False, width=32))
    regularizer = draw(st.sampled_from([None, KANRegularizer(l1=0.01, entropy=0.1)]))
    return {
        "units": draw(st.integers(1, 3)),
        "grid_size": draw(st.integers(1, 8)),
        "spline_order": draw(st.integers(0, max_order)),
        "grid_range": (float(low), float(low + width)),
        "base_activation": draw(st.sampled_from(ACTIVATIONS)),
        "use_bias": draw(st.booleans()),
        "noise_scale": draw(st.sampled_from([0.0, 0.3, 1.0])),
        "grid_eps": draw(st.sampled_from([0.0, 0.02, 1.0])),
        "regularizer": regularizer,
        "seed": draw(st.integers(0, 2**16)),
    }


def perturb(layer, seed):
    """Non-trivial weights (random coefficients, scales, bias, a masked edge)."""
    rng = np.random.default_rng(seed)
    for v in (layer.spline_kernel, layer.base_kernel, layer.spline_scale, layer.bias):
        if v is not None:
            v.assign(rng.normal(size=v.shape).astype("float32"))
    mask = np.ones(layer.edge_mask.shape, "float32")
    mask.flat[0] = 0.0
    layer.edge_mask.assign(mask)


def samples(features, batch=(1, 7, 16), low=-4.0, high=4.0):
    # A few batch sizes, not a range: every new shape compiles anew on JAX.
    return hnp.arrays(np.float32, st.tuples(st.sampled_from(batch), st.just(features)),
                      elements=st.floats(low, high, width=32))


@given(config=layer_configs(), features=st.integers(1, 3), lead=st.sampled_from([(), (2,)]),
       data=st.data())
@pytest.mark.slow
def test_finite_inputs_give_finite_outputs(config, features, lead, data):
    layer = KANDense(**config)
    x = data.draw(hnp.arrays(np.float32, st.tuples(st.sampled_from([1, 5])).map(
        lambda b: lead + b + (features,)), elements=st.floats(-1e6, 1e6, width=32)))
    out = to_numpy(layer(x, training=True))
    assert out.shape == x.shape[:-1] + (config["units"],)
    assert np.all(np.isfinite(out))
    assert all(np.isfinite(to_numpy(loss)) for loss in layer.losses)


@given(config=layer_configs(), features=st.integers(1, 3), data=st.data())
@pytest.mark.slow
def test_edge_activations_sum_to_call(config, features, data):
    layer = KANDense(**config)
    layer.build((None, features))
    perturb(layer, config["seed"])
    x = data.draw(samples(features))
    phi = to_numpy(layer.edge_activations(x))
    out = to_numpy(layer(x))
    bias = to_numpy(layer.bias) if layer.use_bias else 0.0
    scale = 1.0 + np.abs(phi).sum(axis=1)
    np.testing.assert_allclose(phi.sum(axis=1) + bias, out, atol=2e-6 * scale.max())
    np.testing.assert_allclose(out, reference.forward(layer, x) if config["base_activation"] ==
                               "silu" else out, rtol=1e-4, atol=1e-4 * scale.max())


def as_json(config):
    return json.loads(json.dumps(config))


@given(config=layer_configs())
def test_config_round_trip_is_identity(config):
    layer = KANDense(**config)
    first = layer.get_config()
    again = KANDense.from_config(first).get_config()
    assert as_json(again) == as_json(first)
    assert as_json(keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)).get_config()) == as_json(first)


@settings(max_examples=4)
@given(config=layer_configs(), features=st.integers(1, 3), data=st.data())
@pytest.mark.slow
def test_save_load_is_identity(tmp_path_factory, config, features, data):
    model = keras.Sequential([keras.Input((features,)), KANDense(**config)])
    perturb(model.layers[0], config["seed"])
    x = data.draw(samples(features))
    path = str(tmp_path_factory.mktemp("prop") / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.layers[0].uniform_grid == model.layers[0].uniform_grid
    assert as_json(loaded.layers[0].get_config()) == as_json(model.layers[0].get_config())


@given(config=layer_configs(max_order=3), features=st.integers(1, 2), data=st.data())
def test_update_grid_refits_as_well_as_least_squares(config, features, data):
    """On its samples the new spline is the best the new knots allow: no worse than an
    independent least-squares fit (scipy basis, NumPy lstsq) of the old spline."""
    layer = KANDense(**config)
    layer.build((None, features))
    perturb(layer, config["seed"])
    x = data.draw(samples(features, batch=(2, 9, 40), low=-2.0, high=2.0)).astype(np.float64)
    k = layer.spline_order
    old_knots, old_coef = layer.spline()
    old = np.einsum("bnp,npm->bnm", reference.basis(x, old_knots, k), old_coef)
    layer.update_grid(x)
    new_knots, new_coef = layer.spline()
    assert np.all(np.diff(new_knots, axis=1) > 0)
    new_basis = reference.basis(x, new_knots, k)
    new = np.einsum("bnp,npm->bnm", new_basis, new_coef)
    for i in range(features):
        best, *_ = np.linalg.lstsq(new_basis[:, i], old[:, i], rcond=None)
        floor = np.linalg.norm(new_basis[:, i] @ best - old[:, i])
        got = np.linalg.norm(new[:, i] - old[:, i])
        assert got <= floor * (1 + 1e-3) + 1e-4 * (np.linalg.norm(old[:, i]) + 1e-2), (
            i, got, floor)


@settings(max_examples=6)
@given(grid_size=st.integers(1, 5), factor=st.integers(2, 3), k=st.integers(0, 3),
       width=st.sampled_from([[1, 2], [2, 1]]), seed=st.integers(0, 1000), data=st.data())
@pytest.mark.slow
def test_refine_to_a_multiple_is_exact(grid_size, factor, k, width, seed, data):
    model = KAN(width, grid_size=grid_size, spline_order=k, seed=seed)
    perturb(model.layers[0], seed)
    finer = refine(model, grid_size * factor)
    assert finer.layers[0].grid_size == grid_size * factor
    x = data.draw(samples(width[0], low=-1.0, high=1.0))  # inside the grid
    np.testing.assert_allclose(to_numpy(finer(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-5)


@settings(max_examples=4)
@given(width=st.sampled_from([[2, 3, 1], [1, 2, 2], [3, 2, 2, 1]]), seed=st.integers(0, 1000),
       data=st.data())
@pytest.mark.slow
def test_prune_with_zero_thresholds_changes_nothing(width, seed, data):
    model = KAN(width, grid_size=3, seed=seed)
    x = data.draw(samples(width[0], batch=(2, 32)))
    hypothesis.assume(np.all(np.ptp(x, axis=0) > 0))  # every node varies, scores are > 0
    pruned = prune(model, x, node_threshold=0.0, edge_threshold=0.0, verbose=False)
    assert [layer.units for layer in pruned.layers] == width[1:]
    for a, b in zip(pruned.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(to_numpy(pruned(x)), to_numpy(model(x)))


@pytest.mark.slow
def test_pruned_layers_compute_exactly_what_they_replace():
    """The example hypothesis 6.170.17 drew for the test above: on PyTorch the pruned
    layers' variables, made from sliced arrays, kept a transposed memory layout, and the
    autograd path's matmul rounded one float32 ulp differently (3.7e-9 at the output)."""
    model = KAN([2, 3, 1], grid_size=3, seed=0)
    x = np.array([[0.0, -2.25], [-2.25, 0.0]], np.float32)
    pruned = prune(model, x, node_threshold=0.0, edge_threshold=0.0, verbose=False)
    assert [layer.uniform_grid for layer in pruned.layers] == [True, True]
    hidden = model.layers[0](x)
    np.testing.assert_array_equal(to_numpy(pruned.layers[0](x)), to_numpy(hidden))
    np.testing.assert_array_equal(to_numpy(pruned.layers[1](hidden)),
                                  to_numpy(model.layers[1](hidden)))
    np.testing.assert_array_equal(to_numpy(pruned(x)), to_numpy(model(x)))
