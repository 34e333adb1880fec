"""Train a KAN under tf.distribute.MirroredStrategy on 2 logical CPUs; print JSON measurements.

Run by tests/test_distribution.py in a fresh process (logical devices must be
configured before TensorFlow initializes):

    KERAS_BACKEND=tensorflow python tests/support/distributed_tf.py OUT_DIR

Trains the same KAN (a `KANRegularizer` active, `GridUpdate` every 2 steps)
without a strategy and under a `MirroredStrategy` over two logical CPU
devices, once with a coefficient penalty and once with pykan's L1 penalty on
edge scores, without grid updates (each replica scores its own share of the
batch, so that run is not expected to match exactly), then saves the
mirrored model to OUT_DIR/mirrored.keras and reloads it (under the strategy
and without one). Prints one JSON line; the test decides pass or fail.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kan  # noqa: E402
from keras_kan.callbacks import GridUpdate  # noqa: E402

WIDTH = [4, 8, 1]


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, WIDTH[0])).astype("float32")
    y = (np.sin(np.pi * x[:, :1]) + x[:, 1:2] * x[:, 2:3] + np.exp(x[:, 3:4])).astype("float32")
    return x, y


def fit(x, y, regularizer, grid_updates=True):
    """`model.fit` for 2 epochs of 4 batches, grids updated before steps 0, 2, 4.

    Without grid updates the grids stay uniform, whose step compiles in a third
    of the time (what the L1 runs need is only the per-replica scores).
    """
    model = keras_kan.KAN(WIDTH, grid_size=5, seed=0, regularizer=regularizer)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    grid_update = GridUpdate(x=x, every=2, stop_after=5)
    model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0,
              callbacks=[grid_update] if grid_updates else [])
    return model, grid_update.updates


def weights(model):
    return [np.asarray(w, np.float64) for w in model.get_weights()]


def max_rel(a, b):
    return float(max(np.max(np.abs(p - q)) / (np.max(np.abs(q)) + 1e-30) for p, q in zip(a, b)))


def main(out_dir):
    x, y = data()
    x2, _ = data(128, seed=1)
    # A penalty on the coefficients only (independent of the batch), and pykan's
    # L1 penalty on edge scores (standard deviations over the batch).
    coef, l1 = keras_kan.KANRegularizer(coef=1e-3), keras_kan.KANRegularizer(l1=1e-3)
    reference, updates = fit(x, y, coef)
    reference_l1, _ = fit(x, y, l1, grid_updates=False)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {"replicas": strategy.num_replicas_in_sync, "reference_grid_updates": updates}
    with strategy.scope():
        model_l1, _ = fit(x, y, l1, grid_updates=False)
        results["fit_l1_weights_rel_err"] = max_rel(weights(model_l1), weights(reference_l1))
        model, results["grid_updates"] = fit(x, y, coef)
        results["variable_types"] = sorted({type(v.value).__name__ for v in model.variables})
        results["fit_weights_rel_err"] = max_rel(weights(model), weights(reference))
        results["grids_moved"] = bool(not model.layers[0].uniform_grid)
        before = weights(model)
        try:
            keras_kan.fit_lbfgs(model, x, y, steps=1, verbose=0)
            results["fit_lbfgs_error"] = None
        except ValueError as error:
            results["fit_lbfgs_error"] = str(error)
        results["fit_lbfgs_left_weights"] = bool(max_rel(weights(model), before) == 0.0)
        expected = np.asarray(model.predict(x2, verbose=0), np.float64)
        path = os.path.join(out_dir, "mirrored.keras")
        model.save(path)
        np.savez(os.path.join(out_dir, "io.npz"), x=x2, y=expected)
        reloaded = keras.saving.load_model(path)
        results["reload_in_scope_abs_err"] = float(np.max(np.abs(
            np.asarray(reloaded.predict(x2, verbose=0), np.float64) - expected)))
    single = keras.saving.load_model(path)
    results["reload_single_device_abs_err"] = float(np.max(np.abs(
        np.asarray(single(x2), np.float64) - expected)))
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
