"""Write saved_models/golden_<backend>.keras and its inputs/outputs (.npz).

Run once per backend (KERAS_BACKEND=tensorflow|jax|torch) when the saved format
changes on purpose; every backend's test run loads all three files.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_kan import KAN, KANRegularizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "saved_models")


def golden_model():
    """A small KAN with weights that exercise every term (deterministic)."""
    model = KAN([3, 4, 2], grid_size=4, spline_order=3, seed=0, use_bias=True,
                regularizer=KANRegularizer(l1=0.01, entropy=0.1))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        for v in (layer.spline_kernel, layer.base_kernel, layer.spline_scale, layer.bias):
            v.assign(rng.normal(size=v.shape).astype("float32"))
        mask = np.ones(layer.edge_mask.shape, "float32")
        mask[0, -1] = 0
        layer.edge_mask.assign(mask)
    return model


def golden_inputs():
    return np.random.default_rng(1).uniform(-1.5, 1.5, size=(16, 3)).astype("float32")


if __name__ == "__main__":
    backend = keras.backend.backend()
    model = golden_model()
    x = golden_inputs()
    y = np.asarray(keras.ops.convert_to_numpy(model(x)), np.float64)
    model.save(os.path.join(ROOT, f"golden_{backend}.keras"))
    np.savez(os.path.join(ROOT, f"golden_{backend}.npz"), x=x, y=y)
    print("wrote", backend)
