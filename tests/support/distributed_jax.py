"""Train a KAN on 4 virtual JAX CPU devices under keras.distribution; print JSON measurements.

Run by tests/test_distribution.py in a fresh process (the device count must be
set before JAX starts):

    XLA_FLAGS=--xla_force_host_platform_device_count=4 KERAS_BACKEND=jax \\
        python tests/support/distributed_jax.py OUT_DIR

Every check compares a run under `DataParallel` (4 devices on the batch axis)
or `ModelParallel` (a 2 x 2 batch x model mesh with
`keras_kan.distribution.layout_map`) with the same run without a
distribution. It prints one JSON line of measured errors and observed
shardings; the test decides pass or fail. OUT_DIR receives a `.keras` file
saved from the model-parallel model and its inputs and outputs, for loading
on another backend.
"""

import json
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kan  # noqa: E402
from keras_kan import backend as kan_backend  # noqa: E402
from keras_kan.callbacks import GridUpdate  # noqa: E402

WIDTH = [4, 8, 1]  # the hidden layer (8 units) is split over the model axis


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, WIDTH[0])).astype("float32")
    y = (np.sin(np.pi * x[:, :1]) + x[:, 1:2] * x[:, 2:3] + np.exp(x[:, 3:4])).astype("float32")
    return x, y


def new_model():
    model = keras_kan.KAN(WIDTH, grid_size=5, seed=0,
                          regularizer=keras_kan.KANRegularizer(1e-3))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def distributions():
    devices = keras.distribution.list_devices()
    data_parallel = keras.distribution.DataParallel(devices=devices)
    mesh = keras.distribution.DeviceMesh((2, 2), ("batch", "model"), devices)
    layouts = keras_kan.distribution.layout_map(mesh, layers=["kan_dense_0"])
    model_parallel = keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="batch")
    return {"data_parallel": data_parallel, "model_parallel": model_parallel}


def weights(model):
    return [np.asarray(w, np.float64) for w in model.get_weights()]


def max_rel(a, b):
    """max |a - b| / (max |b| + tiny), over lists of arrays (one relative scale per array)."""
    return float(max(np.max(np.abs(p - q)) / (np.max(np.abs(q)) + 1e-30) for p, q in zip(a, b)))


def spec(array):
    """The partition spec of an array or a sharding, as JSON."""
    sharding = getattr(array, "sharding", array)
    if sharding is None:
        return None
    if isinstance(sharding, jax.sharding.NamedSharding):
        return [list(p) if isinstance(p, tuple) else p for p in sharding.spec]
    return "single" if len(sharding.device_set) == 1 else repr(sharding)


def variable_specs(model):
    return {v.path: {"spec": spec(v.value), "devices": len(v.value.sharding.device_set)}
            for v in model.variables}


def fit(x, y):
    """`model.fit` for 2 epochs of 4 batches, grids updated before steps 0, 2, 4."""
    model = new_model()
    grid_update = GridUpdate(x=x, every=2, stop_after=5)
    model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0, callbacks=[grid_update])
    return model, grid_update.updates


def objective_at(model, point, x, y):
    f = kan_backend.value_and_grad_fn(model)
    loss, grad = f.at(point, x, y)
    return loss, grad, f.input_shardings


def main(out_dir):
    x, y = data()
    results = {"devices": len(jax.devices())}

    # 1. model.fit with a regularizer and grid updates.
    reference, updates = fit(x, y)
    results["fit_grid_updates"] = updates
    ref_weights = weights(reference)
    # 2. fit_lbfgs's objective and gradient at one point (after the fit, grids moved).
    point = [np.asarray(v.value) for v in reference.trainable_variables]
    ref_loss, ref_grad, ref_shardings = objective_at(reference, point, x, y)
    results["single_objective_x_sharding"] = spec(ref_shardings[2])
    # 3. refine (coefficients fit on dense samples of each grid interval).
    x2, _ = data(128, seed=1)
    ref_refined = weights(keras_kan.refine(reference, 10))

    for name, distribution in distributions().items():
        r = results[name] = {}
        with distribution.scope():
            model, r["grid_updates"] = fit(x, y)
            r["fit_weights_rel_err"] = max_rel(weights(model), ref_weights)
            r["variables_after_fit"] = variable_specs(model)

            loss, grad, shardings = objective_at(model, point, x, y)
            r["objective_rel_err"] = abs(loss - ref_loss) / abs(ref_loss)
            r["gradient_rel_err"] = float(np.max(np.abs(grad - ref_grad)) /
                                          np.max(np.abs(ref_grad)))
            r["objective_x_sharding"] = spec(shardings[2])
            r["objective_x_devices"] = len(shardings[2].device_set)
            r["objective_weight_shardings"] = [spec(s) for s in shardings[0]]

            refined = keras_kan.refine(model, 10)
            r["refine_weights_rel_err"] = max_rel(weights(refined), ref_refined)
            r["variables_after_refine"] = variable_specs(refined)

            if name == "data_parallel":
                pruned = keras_kan.prune(refined, x, edge_threshold=0.05, verbose=False)
                r["prune_widths"] = [layer.units for layer in pruned.layers]
                r["variables_after_prune"] = variable_specs(pruned)
            else:
                try:  # 255 samples do not split over the 2-device batch axis
                    keras_kan.fit_lbfgs(refined, x[:255], y[:255], steps=1, verbose=0)
                    r["uneven_batch_error"] = None
                except ValueError as error:
                    r["uneven_batch_error"] = str(error)
                # fit_lbfgs runs (with grid updates) and its objective saw sharded data.
                keras_kan.fit_lbfgs(refined, x, y, steps=2, max_iter=5, verbose=0,
                                    update_grid=True, grid_update_num=2, stop_grid_update_step=2)
                used = kan_backend.value_and_grad_fn(refined).input_shardings
                r["fit_lbfgs_x_sharding"] = spec(used[2])
                r["fit_lbfgs_y_sharding"] = spec(used[3])
                r["fit_lbfgs_weight_shardings"] = [spec(s) for s in used[0]]
                r["variables_after_fit_lbfgs"] = variable_specs(refined)
                path = os.path.join(out_dir, "model_parallel.keras")
                refined.save(path)
                np.savez(os.path.join(out_dir, "io.npz"), x=x2,
                         y=np.asarray(refined(x2), np.float64))
        if name == "model_parallel":
            # Outside the distribution: load on one device, same outputs.
            loaded = keras.saving.load_model(path)
            expected = np.load(os.path.join(out_dir, "io.npz"))["y"]
            r["load_single_device_abs_err"] = float(np.max(np.abs(
                np.asarray(loaded(x2), np.float64) - expected)))
            r["loaded_devices"] = max(len(v.value.sharding.device_set) for v in loaded.variables)
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
