"""GridUpdate and Pruning callbacks inside model.fit (fit_lbfgs is covered in test_lbfgs)."""

import keras
import numpy as np
import pytest
import reference
from conftest import to_numpy

from keras_kan import KAN, update_grids
from keras_kan.callbacks import GridUpdate, Pruning
from keras_kan.splines import is_uniform


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.uniform(0, 1, size=(n, 2)) ** 2).astype("float32")  # skewed: quantile knots
    y = (np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2).astype("float32")
    return x, y


def chain_reference(model, x):
    for layer in model.layers:
        x = reference.forward(layer, x)
    return x


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.grids = []

    def on_train_batch_end(self, batch, logs=None):
        from keras_kan.backend import sync_model_state

        sync_model_state(self.model)
        self.grids.append(to_numpy(self.model.layers[0].grid).copy())


@pytest.mark.slow
def test_grid_update_in_fit_counts_steps_and_moves_grids():
    x, y = data()
    model = KAN([2, 3, 1], seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    update = GridUpdate(x=x, every=2, stop_after=5)
    recorder = Recorder()
    assert model.layers[0].uniform_grid is True  # closed-form basis until the update
    history = model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[update, recorder])
    assert update.updates == 3  # steps 0, 2, 4 of 8
    # the compiled step was rebuilt for the general basis (a stale one gives NaN)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.layers[0].uniform_grid is False
    grids = recorder.grids
    assert len(grids) == 8
    assert not np.allclose(grids[0][:, 3:-3], np.linspace(-1, 1, 6))  # moved at step 0
    np.testing.assert_allclose(grids[0][:, 3], x.min(0), atol=1e-5)
    assert np.array_equal(grids[5], grids[7])  # no update after stop_after
    assert not bool(to_numpy(is_uniform(model.layers[0].grid)))
    # the compiled train/predict functions use the new (non-uniform) grid correctly
    np.testing.assert_allclose(model.predict(x, verbose=0), chain_reference(model, x),
                               atol=1e-5)


def test_grid_update_start_leaves_out_the_first_steps():
    """pykan's `start_grid_update_step`: with `start=3`, `every=2` the updates come at
    steps 4 and 6 (multiples of `every`), none at 0 to 3."""
    x, y = data()
    model = KAN([2, 3, 1], seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    update, recorder = GridUpdate(x=x, every=2, stop_after=7, start=3), Recorder()
    model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[update, recorder])
    assert update.updates == 2
    grids = recorder.grids
    for step in range(4):
        np.testing.assert_allclose(grids[step][:, 3:-3], np.broadcast_to(
            np.linspace(-1, 1, 6), grids[step][:, 3:-3].shape), atol=1e-6)
    np.testing.assert_allclose(grids[4][:, 3], x.min(0), atol=1e-5)
    assert update.next_update(4) == 6 and update.next_update(6) is None


@pytest.mark.slow
def test_compiled_predict_follows_a_grid_update_made_outside_fit():
    x, _ = data()
    model = KAN([2, 3, 1], seed=0)
    model.predict(x, verbose=0)  # compiled while the grid is uniform
    update_grids(model, x)
    assert not bool(to_numpy(is_uniform(model.layers[0].grid)))
    np.testing.assert_allclose(model.predict(x, verbose=0), chain_reference(model, x),
                               atol=1e-5)


@pytest.mark.slow
def test_basis_choice_follows_the_grid(tmp_path):
    from keras_kan import refine

    x, _ = data()
    model = KAN([2, 3, 1], seed=0)
    assert [layer.uniform_grid for layer in model.layers] == [True, True]
    assert refine(model, 10).layers[0].uniform_grid is True  # a uniform grid, refined
    update_grids(model, x)
    assert [layer.uniform_grid for layer in model.layers] == [False, False]
    path = str(tmp_path / "updated.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.uniform_grid for layer in loaded.layers] == [False, False]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), chain_reference(model, x),
                               atol=1e-5)
    assert KAN([2, 1], spline_order=0, seed=0).layers[0].uniform_grid is False


@pytest.mark.slow
def test_grid_written_behind_the_layers_back():
    """A compiled step that assumed a uniform grid never returns wrong numbers or NaN."""
    from keras_kan import sync_grids

    x, _ = data()
    model = KAN([2, 3, 1], seed=0)
    model.predict(x, verbose=0)  # compiled (TF, JAX; eager on torch), closed-form basis
    bent = to_numpy(model.layers[0].grid)
    bent[:, 5] += 0.05  # no longer evenly spaced
    model.layers[0].grid.assign(bent.astype("float32"))
    # Eager calls see the write (PyTorch's version counter, JAX's new array,
    # TensorFlow re-reads the small grid).
    np.testing.assert_allclose(to_numpy(model(x)), chain_reference(model, x), atol=1e-5)
    assert model.layers[0].uniform_grid is False
    expected = "kan_dense_0.*keras_kan.sync_grids"
    if keras.config.backend() == "torch":  # eager predict notices the write itself
        stale = model.predict(x, verbose=0)
        np.testing.assert_allclose(stale, chain_reference(model, x), atol=1e-5)
    elif keras.config.backend() == "tensorflow":  # the stale graph raises, naming the layer
        with pytest.raises(Exception, match=expected):
            model.predict(x, verbose=0)
    else:  # JAX: raising would lose the weights in Keras's predict loop: NaN, not wrong
        stale = model.predict(x, verbose=0)
        assert np.all(np.isnan(stale))
    sync_grids(model)  # what keras_kan's own grid changes do
    assert model.layers[0].uniform_grid is False
    np.testing.assert_allclose(model.predict(x, verbose=0), chain_reference(model, x),
                               atol=1e-5)


class Snapshot(keras.callbacks.Callback):
    """The model's weights just before training step `at_step`."""

    def __init__(self, at_step):
        super().__init__()
        self.at_step, self.step, self.weights = at_step, 0, None

    def on_train_batch_begin(self, batch, logs=None):
        if self.step == self.at_step:
            from keras_kan.backend import sync_model_state

            sync_model_state(self.model)
            self.weights = [w.copy() for w in self.model.get_weights()]
        self.step += 1


@pytest.mark.slow
def test_pruning_callback_masks_at_step():
    x, y = data()
    model = KAN([2, 4, 1], seed=0)
    first = model.layers[0]
    scale = np.ones((2, 4), "float32")
    scale[:, 1] = 0.0  # hidden node 1 is dead
    first.spline_scale.assign(to_numpy(first.spline_scale) * scale)
    first.base_kernel.assign(to_numpy(first.base_kernel) * scale)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    pruning = Pruning(x=x, at_step=3)
    seen = Snapshot(at_step=3)  # runs before Pruning: the weights Pruning scores
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[seen, pruning])
    assert pruning.plan is not None
    mask0 = to_numpy(model.layers[0].edge_mask)
    mask1 = to_numpy(model.layers[1].edge_mask)
    assert np.all(mask0[:, 1] == 0) and mask1[1, 0] == 0
    # The exact masks, from scipy-basis edge scores at those weights and the documented
    # rule: a hidden node lives when its largest incoming and outgoing scores exceed
    # node_threshold (1e-2); an edge stays when its score is >= edge_threshold (3e-2).
    twin = KAN([2, 4, 1], seed=1)
    twin.set_weights(seen.weights)
    first, second = twin.layers
    scores0 = reference.edge_scores(first, x)
    scores1 = reference.edge_scores(second, reference.forward(first, x))
    alive = (scores0.max(axis=0) > 1e-2) & (scores1.max(axis=1) > 1e-2)
    np.testing.assert_array_equal(mask0, (scores0 >= 3e-2) * alive[None, :])
    np.testing.assert_array_equal(mask1, (scores1 >= 3e-2) * alive[:, None])


def test_callbacks_need_samples_under_fit_and_validate_arguments():
    x, y = data(64)
    model = KAN([2, 2, 1], seed=0)
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="needs samples"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[GridUpdate()])
    for bad in (dict(every=0), dict(stop_after=-1), dict(every=1.5), dict(start=-1)):
        with pytest.raises(ValueError, match=list(bad)[0]):
            GridUpdate(**bad)
    with pytest.raises(ValueError, match="at_step"):
        Pruning(at_step=-2)


@pytest.mark.parametrize("scores, kept", [("edge", 0.0), ("attribution", 1.0)])
def test_pruning_callback_takes_the_score_kind(scores, kept):
    """`y = 100 * (0.01 x_1) + x_2`: the edge into the small node scores 0.009 by the edge
    score and 0.7 by attribution (tests/test_surgery.py), so only attribution keeps it."""
    from keras_kan.symbolic import fix_symbolic

    model = KAN([2, 2, 1], seed=0)
    for layer in model.layers:
        layer.edge_mask.assign(np.zeros(tuple(layer.edge_mask.shape), "float32"))
    for layer, i, j, c in ((0, 0, 0, 0.01), (0, 1, 1, 1.0), (1, 0, 0, 100.0), (1, 1, 0, 1.0)):
        fix_symbolic(model, layer, i, j, "x", fit_params=False, params=(1, 0, c, 0))
    x = np.random.default_rng(3).uniform(-1, 1, (256, 2)).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(x, x[:, :1] + x[:, 1:], epochs=1, batch_size=256, verbose=0,
              callbacks=[Pruning(x=x, scores=scores)])
    assert to_numpy(model.layers[0].symbolic_mask)[0, 0] == kept
    with pytest.raises(ValueError, match="scores"):
        Pruning(scores="share")
