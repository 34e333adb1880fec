"""Load .keras files with symbolic edges (safe_mode=True) on $KERAS_BACKEND.

Usage: python tests/support/crossload_symbolic.py PLAIN.keras PLAIN.npz CUSTOM.keras CUSTOM.npz
PLAIN uses built-in functions only; CUSTOM also a user function `cosh2`, which
must fail to load before it is registered here and load after.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import sympy  # noqa: E402

from keras_kan import add_symbolic, remove_symbolic  # noqa: E402


def check(model_path, io_path, tag):
    io = np.load(io_path)
    model = keras.saving.load_model(model_path, safe_mode=True)
    got = np.asarray(keras.ops.convert_to_numpy(model(io["x"])), np.float64)
    error = float(np.abs(got - io["y"]).max())
    print(f"{keras.backend.backend()} {tag} max_abs_diff={error:.3e}")
    return bool(np.all(np.abs(got - io["y"]) <= 1e-6 + 1e-6 * np.abs(io["y"])))


def main(plain, plain_io, custom, custom_io):
    ok = check(plain, plain_io, "plain")
    try:
        keras.saving.load_model(custom, safe_mode=True)
        print("unregistered: loaded (wrong)")
        ok = False
    except (ValueError, TypeError) as error:  # Keras may wrap it; the message must say why
        message = str(error)
        if "cosh2" in message and "add_symbolic" in message:
            print("unregistered: ValueError naming cosh2 and add_symbolic")
        else:
            print(f"unregistered: unclear error {message[:500]}")
            ok = False
    add_symbolic("cosh2", lambda u: keras.ops.cosh(2 * u), lambda u: sympy.cosh(2 * u), 3)
    try:
        if check(custom, custom_io, "custom"):
            print("custom ok")
        else:
            ok = False
    finally:  # the worker process runs other checks after this one
        remove_symbolic("cosh2")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
