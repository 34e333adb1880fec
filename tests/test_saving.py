"""Saving: .keras round trips, weights by name, and the cross-backend load matrix."""

import json
import os
import sys

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy

from keras_kan import KAN, KANDense, KANRegularizer

HERE = os.path.dirname(os.path.abspath(__file__))
SAVED = os.path.join(HERE, "..", "saved_models")
BACKENDS = ("tensorflow", "jax", "torch")

sys.path.insert(0, os.path.join(HERE, "support"))
from make_golden import golden_inputs, golden_model  # noqa: E402


def as_json(config):
    """Configs compare equal once tuples and lists are the same (as in the file)."""
    return json.loads(json.dumps(config))


@pytest.mark.slow
def test_keras_round_trip(tmp_path):
    model = golden_model()
    x = golden_inputs()
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    assert as_json(loaded.get_config()) == as_json(model.get_config())
    assert loaded.layers[0].regularizer.get_config() == model.layers[0].regularizer.get_config()
    np.testing.assert_array_equal(to_numpy(loaded.layers[0].edge_mask),
                                  to_numpy(model.layers[0].edge_mask))


@pytest.mark.slow
def test_round_trip_after_training_keeps_optimizer(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 2)).astype("float32")
    y = x[:, :1] * x[:, 1:]
    model = KAN([2, 3, 1], seed=0)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    path = str(tmp_path / "trained.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), atol=1e-7)
    # The optimizer state itself: step count and every slot (Adam's moments), in order.
    assert int(to_numpy(loaded.optimizer.iterations)) == 2 * 2  # 2 epochs of 2 batches
    slots = [(v.name, to_numpy(v)) for v in model.optimizer.variables]
    restored = [(v.name, to_numpy(v)) for v in loaded.optimizer.variables]
    assert len(restored) == len(slots) > 2  # names differ only by the model's prefix
    for (name, value), (_, again) in zip(slots, restored):
        np.testing.assert_array_equal(again, value, err_msg=name)
    assert sum(np.count_nonzero(value) for name, value in slots[1:]) > 0
    # ... so one more epoch moves both models the same way (a fresh Adam would not).
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_weights_are_saved_by_name(tmp_path):
    model = golden_model()
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    import h5py

    with h5py.File(path) as f:
        names = set()
        f.visit(names.add)
    for weight in ("grid", "spline_kernel", "base_kernel", "spline_scale", "edge_mask", "bias"):
        assert any(n.endswith("vars/" + weight) for n in names), (weight, sorted(names))
    fresh = KAN([3, 4, 2], grid_size=4, seed=5, use_bias=True)
    fresh.load_weights(path)
    x = golden_inputs()
    np.testing.assert_array_equal(to_numpy(fresh(x)), to_numpy(model(x)))


def test_shape_mismatch_is_a_clear_error(tmp_path):
    model = KAN([2, 3, 1], grid_size=5, spline_order=3, seed=0)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    # Another spline order is not the same layer on another grid: no adoption.
    other = KAN([2, 3, 1], grid_size=5, spline_order=2, seed=0)
    with pytest.raises(ValueError, match="spline_order=2"):
        other.load_weights(path)


@pytest.mark.slow
def test_weights_of_another_grid_are_refused_and_change_nothing(tmp_path):
    """Strict loading, as Keras's: grid-5 weights do not load into a grid-8 model."""
    model = KAN([2, 3, 1], grid_size=5, seed=0)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    other = KAN([2, 3, 1], grid_size=8, seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (16, 2)).astype("float32")
    weights, outputs = other.get_weights(), to_numpy(other(x))
    with pytest.raises(ValueError) as error:
        other.load_weights(path)
    message = str(error.value)
    for part in ("kan_dense_0", "'grid'", "(2, 12)", "(2, 15)", "'spline_kernel'",
                 "(2, 8, 3)", "(2, 11, 3)", "grid_size=8"):
        assert part in message, (part, message)
    assert [layer.grid_size for layer in other.layers] == [8, 8]
    for before, after in zip(weights, other.get_weights()):
        np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(to_numpy(other(x)), outputs)


def test_a_file_whose_config_and_weights_disagree_is_refused(tmp_path):
    """A .keras file whose config says grid_size 7 while its weights have grid 5."""
    import zipfile

    path, tampered = str(tmp_path / "m.keras"), str(tmp_path / "tampered.keras")
    KAN([2, 3, 1], grid_size=5, seed=0).save(path)

    def set_grid(node):
        if isinstance(node, dict):
            if node.get("class_name") == "KANDense":
                node["config"]["grid_size"] = 7
            for value in node.values():
                set_grid(value)
        elif isinstance(node, list):
            for value in node:
                set_grid(value)

    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                set_grid(config)
                data = json.dumps(config).encode()
            target.writestr(item, data)
    with pytest.raises(ValueError, match=r"(?s)kan_dense_0.*'grid'.*\(2, 12\).*\(2, 14\)"):
        keras.saving.load_model(tampered)


@pytest.mark.slow
def test_an_accepted_architecture_loads(tmp_path):
    """Weights of a refined / pruned model load into the original architecture only where
    the layer accepts that architecture (a recorded change: KerasTuner's trials)."""
    model = KAN([2, 3, 1], grid_size=7, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (16, 2)).astype("float32")
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    other = KAN([2, 5, 1], grid_size=3, seed=1)
    other.layers[0].accept_architecture(units=3, grid_size=7)
    other.layers[1].accept_architecture(grid_size=6, input_dim=3)  # not the saved one
    with pytest.raises(ValueError, match="kan_dense_1"):
        other.load_weights(path)
    other.layers[1].accept_architecture(grid_size=7, input_dim=3)
    other.load_weights(path)
    assert [layer.grid_size for layer in other.layers] == [7, 7]
    assert [layer.units for layer in other.layers] == [3, 1]
    assert other.layers[1].get_config()["units"] == 1
    np.testing.assert_array_equal(to_numpy(other(x)), to_numpy(model(x)))


@pytest.mark.parametrize("saved_on", BACKENDS)
def test_golden_files_load_on_this_backend(saved_on):
    path = os.path.join(SAVED, f"golden_{saved_on}.keras")
    io = np.load(os.path.join(SAVED, f"golden_{saved_on}.npz"))
    model = keras.saving.load_model(path)
    # Files written by earlier versions: same weights, float32 rounding of a
    # possibly different (equally exact) basis path, hence the relative part.
    np.testing.assert_allclose(to_numpy(model(io["x"])), io["y"], atol=1e-6, rtol=1e-6)
    assert isinstance(model.layers[0], KANDense)
    assert isinstance(model.layers[0].regularizer, KANRegularizer)


@pytest.mark.slow
def test_file_saved_here_loads_on_the_other_backends(tmp_path, other_backends):
    """Save on this backend; load on the other two (worker processes); outputs to float32
    rounding (1e-6 absolute + 1e-6 relative)."""
    model = golden_model()
    x = golden_inputs()
    model_path, io_path = str(tmp_path / "m.keras"), str(tmp_path / "io.npz")
    model.save(model_path)
    np.savez(io_path, x=x, y=to_numpy(model(x)))
    for other in BACKENDS:
        if other == BACKEND:
            continue
        status, printed = other_backends.run(other, "crossload", "main", model_path, io_path)
        assert status == 0 and "max_abs_diff" in printed, (other, printed)
