"""KANDense: forward math, shapes, training, validation, mixed precision."""

import re

import keras
import numpy as np
import pytest
import reference
from conftest import to_numpy

from keras_kan import KAN, KANDense


def perturb(layer, rng, scale=0.5):
    """Give every weight a non-trivial value so the comparison exercises all terms."""
    for v in (layer.spline_kernel, layer.base_kernel, layer.spline_scale):
        v.assign(to_numpy(v) + scale * rng.normal(size=v.shape))
    mask = np.ones(layer.edge_mask.shape)
    mask[0, 0] = 0.0
    layer.edge_mask.assign(mask)


@pytest.mark.parametrize("grid_size,k,use_bias", [(5, 3, False), (3, 1, True), (8, 2, False)])
@pytest.mark.slow
def test_forward_matches_numpy_reference(grid_size, k, use_bias):
    rng = np.random.default_rng(grid_size)
    layer = KANDense(4, grid_size=grid_size, spline_order=k, use_bias=use_bias,
                     grid_range=(-1.5, 1.0), bias_initializer="random_normal")
    x = rng.uniform(-3, 3, size=(64, 3)).astype("float32")  # some points off the grid
    layer.build((None, 3))
    perturb(layer, rng)
    got = to_numpy(layer(x))
    np.testing.assert_allclose(got, reference.forward(layer, x), atol=1e-5, rtol=1e-5)


def test_edge_activations_sum_to_output():
    rng = np.random.default_rng(0)
    layer = KANDense(5, use_bias=True, bias_initializer="ones")
    x = rng.uniform(-1, 1, size=(32, 3)).astype("float32")
    out = to_numpy(layer(x))
    phi = to_numpy(layer.edge_activations(x))
    assert phi.shape == (32, 3, 5)
    np.testing.assert_allclose(phi.sum(axis=1) + 1.0, out, atol=1e-5)
    np.testing.assert_allclose(phi, reference.edge_functions(layer, x), atol=1e-5)


def test_initialization_follows_pykan():
    n, m, g = 6, 40, 5
    layer = KANDense(m, grid_size=g, seed=3)
    layer.build((None, n))
    w = reference.weights(layer)
    assert w["grid"].shape == (n, g + 7)
    np.testing.assert_allclose(w["grid"][0, 3:-3], np.linspace(-1, 1, g + 1), atol=1e-7)
    np.testing.assert_allclose(w["spline_scale"], 1 / np.sqrt(n), rtol=1e-6)
    np.testing.assert_array_equal(w["edge_mask"], 1.0)
    assert np.abs(w["base_kernel"]).max() <= 1 / np.sqrt(n) + 1e-7
    assert w["base_kernel"].std() > 0.2 / np.sqrt(n)
    # The initial spline interpolates noise of size noise_scale / G at the grid points.
    bas = reference.basis(w["grid"][:, 3:-3].T, w["grid"], 3)
    values = np.einsum("bnk,nkm->bnm", bas, w["spline_kernel"])
    assert np.abs(values).max() <= 0.5 * 0.3 / g + 1e-6
    assert values.std() > 0.1 * 0.3 / g


def test_seeded_init_draws_the_torch_rand_stream():
    """Seed s draws what torch.manual_seed(s); torch.rand(...) gives on the CPU."""
    layer = KANDense(2, grid_size=3, noise_scale=0.0, scale_base_mu=0.0, scale_base_sigma=1.0,
                     seed=0)
    layer.build((None, 3))
    # torch.manual_seed(0); torch.rand(4, 3, 2); torch.rand(3, 2)  (values from torch 2.x)
    first_noise = [0.4962566, 0.7682218, 0.08847743, 0.13203049, 0.30742282, 0.6340787]
    import keras_kan.rng as kan_rng

    noise, base = kan_rng.torch_rand(0, (4, 3, 2), (3, 2))
    np.testing.assert_allclose(noise.ravel()[:6], first_noise, atol=1e-7)
    np.testing.assert_allclose(to_numpy(layer.base_kernel), (base * 2 - 1) / np.sqrt(3),
                               atol=1e-7)


def test_seed_gives_same_init_and_none_varies():
    a, b = KANDense(3, seed=7), KANDense(3, seed=7)
    a.build((None, 2))
    b.build((None, 2))
    np.testing.assert_array_equal(to_numpy(a.spline_kernel), to_numpy(b.spline_kernel))
    c, d = KANDense(3), KANDense(3)
    c.build((None, 2))
    d.build((None, 2))
    assert not np.allclose(to_numpy(c.base_kernel), to_numpy(d.base_kernel))


def test_higher_rank_inputs_act_on_last_axis():
    rng = np.random.default_rng(1)
    layer = KANDense(4)
    x = rng.uniform(-1, 1, size=(2, 5, 3)).astype("float32")
    y = to_numpy(layer(x))
    assert y.shape == (2, 5, 4)
    np.testing.assert_allclose(y.reshape(10, 4), to_numpy(layer(x.reshape(10, 3))), atol=1e-6)
    assert layer.compute_output_shape((None, 5, 3)) == (None, 5, 4)


@pytest.mark.slow
def test_sequential_add_and_functional():
    model = keras.Sequential()
    model.add(keras.Input((2,)))
    model.add(KANDense(5))
    model.add(KANDense(1))
    assert model.output_shape == (None, 1)
    inp = keras.Input((7, 2))
    out = KANDense(3)(keras.layers.Dense(2)(inp))
    functional = keras.Model(inp, out)
    assert functional.output_shape == (None, 7, 3)
    assert to_numpy(functional(np.zeros((4, 7, 2), "float32"))).shape == (4, 7, 3)


@pytest.mark.slow
def test_kan_builds_pykan_style_stack():
    model = KAN(width=[2, 5, 1], grid_size=4, spline_order=2, seed=0)
    assert [layer.units for layer in model.layers] == [5, 1]
    assert model.layers[0].grid_size == 4 and model.layers[1].spline_order == 2
    assert model.layers[0].seed == model.layers[1].seed == 0
    assert model.layers[1].seed_offset == (4 + 2) * 2 * 5  # draws of layer 0
    same = KAN(width=[2, 5, 1], grid_size=4, spline_order=2, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype("float32")
    np.testing.assert_array_equal(to_numpy(model(x)), to_numpy(same(x)))
    for bad in ([2], [2, 0, 1], [2, [3, 2, 1], 1], [2, [-1, 1], 1], "2,1"):
        with pytest.raises(ValueError, match="width"):
            KAN(width=bad)


@pytest.mark.slow
def test_fit_changes_every_trainable_weight_and_lowers_loss():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(256, 2)).astype("float32")
    y = (np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2).astype("float32")
    model = KAN([2, 3, 1], seed=0, use_bias=True)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    before = {v.path: to_numpy(v) for v in model.trainable_variables}
    assert len(before) == 8  # 4 per layer: spline_kernel, base_kernel, spline_scale, bias
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    for v in model.trainable_variables:
        assert not np.allclose(to_numpy(v), before[v.path]), v.path
    for v in model.non_trainable_variables:  # grid and masks stay put; no symbolic edge
        assert v.name in ("grid", "edge_mask", "symbolic_mask", "symbolic_a", "symbolic_b",
                          "symbolic_c", "symbolic_d")
    assert model.evaluate(x, y, verbose=0) < first


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.slow
def test_mixed_precision(policy):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(16, 3)).astype("float32")
    reference_layer = KANDense(4, seed=0)
    expected = to_numpy(reference_layer(x))
    keras.config.set_dtype_policy(policy)
    layer = KANDense(4, seed=0)
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in layer.weights)
    tol = 2e-2 if policy == "mixed_bfloat16" else 2e-3
    np.testing.assert_allclose(to_numpy(y), expected, atol=tol * np.abs(expected).max())
    model = keras.Sequential([keras.Input((3,)), layer, keras.layers.Activation("linear",
                                                                                dtype="float32")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.zeros((16, 4), "float32"), epochs=1, verbose=0)
    assert np.all(np.isfinite(to_numpy(layer.spline_kernel)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"units": 0}, "units"),
        ({"units": -3}, "units"),
        ({"units": 2.5}, "units"),
        ({"units": 2, "grid_size": 0}, "grid_size"),
        ({"units": 2, "spline_order": -1}, "spline_order"),
        ({"units": 2, "grid_range": (1, 1)}, "grid_range"),
        ({"units": 2, "grid_range": (2, -1)}, "grid_range"),
        ({"units": 2, "grid_range": (0, float("inf"))}, "grid_range"),
        ({"units": 2, "grid_range": (0, float("nan"))}, "grid_range"),
        ({"units": 2, "grid_range": 3}, "grid_range"),
        ({"units": 2, "grid_eps": 1.5}, "grid_eps"),
        ({"units": 2, "noise_scale": -1}, "noise_scale"),
        ({"units": 2, "regularizer": "l2"}, "regularizer"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, match):
    bad_value = list(kwargs.values())[-1]
    # The argument's name and the exact value received, at the end of the message.
    pattern = rf"argument `{match}`: .*, got {re.escape(repr(bad_value))}\.$"
    with pytest.raises(ValueError, match=pattern):
        KANDense(**kwargs)


def test_bad_inputs_raise_clear_errors():
    layer = KANDense(2)
    with pytest.raises(ValueError, match="min_ndim=2|rank"):
        layer(np.zeros((3,), "float32"))
    layer = KANDense(2)
    layer(np.zeros((4, 3), "float32"))
    with pytest.raises(ValueError, match="axis -1"):
        layer(np.zeros((4, 5), "float32"))


def test_config_round_trip():
    from keras_kan import KANRegularizer

    layer = KANDense(3, grid_size=7, spline_order=2, grid_range=(-2, 3), base_activation="tanh",
                     use_bias=True, noise_scale=0.1, scale_base_mu=0.5, scale_base_sigma=0.2,
                     grid_eps=0.5, regularizer=KANRegularizer(l1=0.1, entropy=1.0), seed=4,
                     name="k")
    config = layer.get_config()
    clone = KANDense.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, KANDense) and revived.get_config() == config
    assert revived.regularizer.get_config() == {"l1": 0.1, "entropy": 1.0, "coef": 0.0,
                                                "coef_diff": 0.0}
