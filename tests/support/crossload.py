"""Load a .keras file on the backend in $KERAS_BACKEND and compare with stored outputs.

Usage: python tests/support/crossload.py MODEL.keras IO.npz
Prints the max absolute difference; exits 1 if any output differs by more than
1e-6 + 1e-6 * |expected| (float32 rounding: other backends order sums differently).
The tests call `main` (and `layer_options`) through `backend_worker.py`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kan  # noqa: E402,F401  (registers the serializable classes)


def main(model_path, io_path):
    io = np.load(io_path)
    model = keras.saving.load_model(model_path)
    got = np.asarray(keras.ops.convert_to_numpy(model(io["x"])), np.float64)
    error = np.abs(got - io["y"])
    print(f"{keras.backend.backend()} max_abs_diff={float(error.max()):.3e}")
    return 0 if np.all(error <= 1e-6 + 1e-6 * np.abs(io["y"])) else 1


def layer_options(model_path):
    """Print each KANDense's (use_base, scales_trainable) and the trainable count, as JSON."""
    import json

    model = keras.saving.load_model(model_path)
    print(json.dumps({"options": [[layer.use_base, layer.scales_trainable]
                                  for layer in model.layers],
                      "trainable": len(model.trainable_variables)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
