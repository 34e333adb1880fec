"""Forward-pass cost of symbolic edges: a numeric KANDense vs the same layer with
every edge symbolic (8 functions in use), and with every edge both.

Run: `KERAS_BACKEND=jax python benchmarks/symbolic_speed.py` (prints ms per call).
"""

import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_kan import KAN, symbolic  # noqa: E402

NAMES = ["sin", "cos", "exp", "x^2", "x^3", "tanh", "1/x", "log"]


def timed(model, x, repeats=50):
    predict = model.make_predict_function()  # compiled, as model.predict uses it
    del predict
    model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(repeats):
        model.predict_on_batch(x)
    return 1e3 * (time.perf_counter() - start) / repeats


def main(n=32, m=32, batch=1024):
    x = np.random.default_rng(0).uniform(-1, 1, (batch, n)).astype("float32")
    rows = []
    for mode in (None, "symbolic", "both"):
        model = KAN([n, m], seed=0)
        if mode:
            for i in range(n):
                for j in range(m):
                    symbolic.fix_symbolic(model, 0, i, j, NAMES[(i + j) % len(NAMES)],
                                          fit_params=False, params=(0.5, 1.5, 1.0, 0.0),
                                          mode=mode, verbose=False)
        rows.append((mode or "numeric", timed(model, x)))
    print(f"KANDense({m}) on {n} inputs, batch {batch}, {keras.backend.backend()}:")
    for name, ms in rows:
        print(f"  {name:<9} {ms:7.3f} ms per call  ({ms / rows[0][1]:.2f}x numeric)")


if __name__ == "__main__":
    main()
