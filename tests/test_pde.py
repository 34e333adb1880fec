"""Physics-informed and continual training: fit_lbfgs(objective=...), ObjectiveModel,
KANDense(use_base=False, scales_trainable=False) and their save/load across backends."""

import json
import os
import sys

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy
from keras import ops

import keras_kan
from keras_kan import KAN, KANDense, ObjectiveModel, fit_lbfgs
from keras_kan.callbacks import GridUpdate

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
import continual_learning  # noqa: E402
import heat  # noqa: E402
import poisson  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def _small_poisson(n=11):
    mesh, boundary, source = poisson.problem(n)
    return mesh, poisson.poisson_objective(mesh, boundary, source)


def _regression():
    """A cheap objective (no input derivatives: fast to compile) and its samples."""
    x = np.random.default_rng(0).uniform(-1, 1, (64, 2)).astype("float32")
    y = (np.sin(2 * x[:, :1]) * x[:, 1:]).astype("float32")
    xt, yt = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    return x, lambda m: ops.mean((m(xt) - yt) ** 2)


def _weights(model):
    return [to_numpy(v) for v in model.weights]


# --- fit_lbfgs(objective=...) -----------------------------------------------------------


@pytest.mark.slow
def test_objective_trains_with_history_callbacks_and_grid_updates():
    mesh, objective = _regression()
    model = KAN([2, 2, 1], grid_size=5, seed=1)
    grids = to_numpy(model.layers[0].grid)
    seen = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))
    history = fit_lbfgs(model, objective=objective, steps=4, max_iter=5, verbose=0,
                        callbacks=[callback, GridUpdate(x=mesh * 0.9, every=2, stop_after=3)])
    loss = history.history["loss"]
    assert len(loss) == 4 and seen == [0, 1, 2, 3]
    assert loss[-1] < loss[0] < float(to_numpy(objective(model))) * 50
    assert not np.allclose(to_numpy(model.layers[0].grid), grids)  # the grid moved
    assert float(to_numpy(objective(model))) == pytest.approx(loss[-1], rel=1e-4)


@pytest.mark.slow
def test_objective_with_update_grid_and_refine():
    mesh, objective = _regression()
    model = KAN([2, 2, 1], grid_size=3, seed=1)
    fit_lbfgs(model, mesh, objective=objective, steps=2, max_iter=5, update_grid=True,
              grid_update_num=2, stop_grid_update_step=2, verbose=0)
    assert not model.layers[0].uniform_grid
    before = float(to_numpy(objective(model)))
    model = keras_kan.refine(model, 6, mesh)
    history = fit_lbfgs(model, objective=objective, steps=2, max_iter=5, verbose=0)
    assert history.history["loss"][-1] < before * 1.01


@pytest.mark.parametrize("bad, error, match", [
    (lambda m: m(np.zeros((3, 2), "float32")), ValueError, "scalar"),
    (lambda m: ops.mean(m(np.zeros((3, 2), "float32"))) * np.nan, ValueError, "not finite"),
    (lambda m: ops.log(ops.mean(m(np.zeros((3, 2), "float32"))) * 0.0), ValueError,
     "not finite"),
    (3.0, TypeError, "callable"),
])
def test_bad_objectives_raise_and_leave_weights(bad, error, match):
    model = KAN([2, 2, 1], grid_size=3, seed=0)
    before = _weights(model)
    with pytest.raises(error, match=match):
        fit_lbfgs(model, objective=bad, steps=2, verbose=0)
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)


def test_objective_rejects_data_it_does_not_use():
    model = KAN([2, 2, 1], grid_size=3, seed=0)
    with pytest.raises(ValueError, match="`y` is not used"):
        fit_lbfgs(model, np.zeros((4, 2)), np.zeros((4, 1)), objective=lambda m: ops.sum(
            m.layers[0].spline_kernel), steps=1, verbose=0)


@pytest.mark.slow
def test_objective_model_trains_with_a_keras_optimizer():
    mesh, objective = _regression()
    kan = KAN([2, 2, 1], grid_size=4, seed=0)
    trainer = ObjectiveModel(kan, objective)
    trainer.compile(optimizer=keras.optimizers.Adam(2e-2))
    history = trainer.fit(epochs=15, verbose=0)
    loss = history.history["loss"]
    assert len(loss) == 15 and loss[-1] < 0.8 * loss[0]
    assert float(to_numpy(objective(kan))) < loss[0]  # the KAN itself was trained
    np.testing.assert_allclose(to_numpy(trainer(mesh)), to_numpy(kan(mesh)))


@pytest.mark.slow
def test_objective_model_solves_poisson():
    mesh, objective = _small_poisson(9)
    kan = KAN([2, 2, 1], grid_size=4, seed=0)
    trainer = ObjectiveModel(kan, objective)
    trainer.compile(optimizer=keras.optimizers.Adam(2e-2))
    loss = trainer.fit(epochs=30, verbose=0).history["loss"]
    assert loss[-1] < 0.7 * loss[0]  # 0.80 -> 0.43 on TensorFlow


@pytest.mark.slow
def test_small_poisson_solve_converges():
    mesh, boundary, source = poisson.problem(21)
    model, rows = poisson.train_kan(mesh, boundary, source, grids=(5,), steps=20, seed=1)
    assert rows[-1][1] < 2e-2  # mesh MSE; ~1e-2 after 20 steps, 3e-3 after 50


# --- continual learning -------------------------------------------------------------------


@pytest.mark.slow
def test_bumps_learned_in_sequence_are_not_forgotten():
    models = {"KAN": continual_learning.make_kan(grid_size=60, seed=0)}
    errors, _ = continual_learning.run(models, phases=3, steps=8, points=60)
    kan = errors["KAN"]
    assert kan[0, 0] < 2e-2
    # Regions 1 and 2 after the later phases: as good as right after they were learned.
    assert kan[2, 0] < kan[0, 0] * 1.5 + 1e-4
    assert kan[2, 1] < kan[1, 1] * 1.5 + 1e-4


# --- layer options --------------------------------------------------------------------------


@pytest.mark.slow
def test_use_base_false_and_frozen_scales():
    layer = KANDense(3, grid_size=4, seed=0, use_base=False, scales_trainable=False)
    model = keras.Sequential([keras.Input((2,)), layer])
    assert [v.name for v in model.trainable_variables] == ["spline_kernel"]
    np.testing.assert_array_equal(to_numpy(layer.base_kernel), 0.0)
    x = ops.convert_to_tensor(np.random.default_rng(0).uniform(-1, 1, (7, 2)), "float32")
    spline_part = np.einsum("bik,ikj->bj", to_numpy(layer.features(x))[..., :-1],
                            to_numpy(layer.effective_kernel())[:, :-1])
    np.testing.assert_allclose(to_numpy(model(x)), spline_part, atol=1e-6)
    frozen = KANDense(3, grid_size=4, seed=0, scales_trainable=False)
    frozen.build((None, 2))
    assert [v.name for v in frozen.trainable_weights] == ["spline_kernel"]
    assert not KANDense(3, use_base=False).get_config()["use_base"]
    with pytest.raises(ValueError, match="use_base"):
        KANDense(3, use_base="no")
    with pytest.raises(ValueError, match="scales_trainable"):
        KANDense(3, scales_trainable=1)


@pytest.mark.slow
def test_options_reach_every_layer_and_survive_fit_and_refine():
    model = KAN([1, 2, 1], grid_size=5, seed=0, use_base=False, scales_trainable=False)
    assert all(not layer.use_base and not layer.scales_trainable for layer in model.layers)
    x = np.linspace(-1, 1, 50)[:, None].astype("float32")
    model.compile(loss="mse")
    scales = [to_numpy(layer.spline_scale) for layer in model.layers]
    fit_lbfgs(model, x, np.sin(3 * x), steps=2, verbose=0)
    for layer, scale in zip(model.layers, scales):
        np.testing.assert_array_equal(to_numpy(layer.spline_scale), scale)
        np.testing.assert_array_equal(to_numpy(layer.base_kernel), 0.0)
    refined = keras_kan.refine(model, 10, x)
    assert all(not layer.use_base and not layer.scales_trainable for layer in refined.layers)
    assert len(refined.trainable_variables) == 2


def _options_model():
    model = KAN([2, 3, 1], grid_size=4, seed=3, use_base=False, scales_trainable=False)
    x = np.random.default_rng(1).uniform(-1, 1, (8, 2)).astype("float32")
    return model, x


@pytest.mark.slow
def test_options_round_trip(tmp_path):
    model, x = _options_model()
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert all(not layer.use_base and not layer.scales_trainable for layer in loaded.layers)
    assert len(loaded.trainable_variables) == 2
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


@pytest.mark.slow
def test_options_load_on_the_other_backends(tmp_path, other_backends):
    model, x = _options_model()
    model_path, io_path = str(tmp_path / "m.keras"), str(tmp_path / "io.npz")
    model.save(model_path)
    np.savez(io_path, x=x, y=to_numpy(model(x)))
    for other in BACKENDS:
        if other == BACKEND:
            continue
        status, printed = other_backends.run(other, "crossload", "layer_options", model_path)
        assert status == 0, (other, printed)
        assert json.loads(printed) == {"options": [[False, False]] * 2, "trainable": 2}
        status, printed = other_backends.run(other, "crossload", "main", model_path, io_path)
        assert status == 0, (other, printed)


# --- the PDE recipe (examples/poisson.py --recipe 2024) -----------------------------------


def test_recipe_2024_starts_from_pykan_0_1_scales():
    recipe = poisson.RECIPES["2024"]
    model = poisson.new_kan(5, 2, recipe)
    rng = np.random.default_rng(2)
    for layer in model.layers:
        n, m = layer.base_kernel.shape
        np.testing.assert_array_equal(to_numpy(layer.spline_scale), 1.0)
        expected = 1 / np.sqrt(n) + 0.25 * (2 * rng.standard_normal((n, m)) - 1)
        np.testing.assert_allclose(to_numpy(layer.base_kernel), expected, rtol=1e-6)
        assert layer.bias is not None and layer.grid_eps == 1.0
        assert layer.noise_scale == 0.1
    reference = poisson.new_kan(5, 2, poisson.RECIPES["0.2.8"])
    assert reference.layers[0].bias is None
    np.testing.assert_allclose(to_numpy(reference.layers[0].spline_scale), 1 / np.sqrt(2),
                               rtol=1e-6)


# --- the heat equation (examples/heat.py) ------------------------------------------------


@pytest.mark.parametrize("rate, expected", [(1.0, 0.0), (2.0, None)])
def test_heat_objective_is_zero_at_the_exact_solution_only(rate, expected):
    """u = exp(-rate t) sin(pi x): rate 1 is the solution (objective ~0); rate 2 leaves
    the residual (pi^2 - 2) e^{-2t} s - (pi^2 - 1) e^{-t} s, s = sin(pi x), and nothing
    at the initial and boundary points."""
    mesh, initial, boundary = heat.problem(5)
    objective = heat.heat_objective(mesh, initial, boundary, alpha=0.5)

    def u(z):
        return ops.exp(-rate * z[:, 1:]) * ops.sin(np.pi * z[:, :1])

    if expected is None:
        x, t = mesh[:, :1].astype(np.float64), mesh[:, 1:].astype(np.float64)
        s = np.sin(np.pi * x)
        r = (np.pi**2 - rate) * np.exp(-rate * t) * s - (np.pi**2 - 1) * np.exp(-t) * s
        expected = 0.5 * np.mean(r**2)
    assert float(to_numpy(objective(u))) == pytest.approx(expected, rel=1e-4, abs=1e-9)
