"""TensorFlow: when marking the spline basis for XLA pays, by basis size.

    KERAS_BACKEND=tensorflow python benchmarks/tf_basis_marking.py [--repeats 30]

Under Keras's default `compile()` on CPU, TensorFlow runs a plain graph and
`keras_kan.backend.tensorflow.spline_basis` marks the basis ops of large inputs
for XLA (`MARK_FOR_XLA_FROM` elements `B n K`, an unknown batch size counting as
`UNKNOWN_BATCH`). For one layer's basis times a kernel and its gradient, in a
`tf.function` traced with the batch size known (as full-batch L-BFGS traces)
and unknown (as `model.fit` traces), this prints per shape and knot kind:

* first call (trace + compile) and time per later call, for the plain ops
  (`plain_graphs()`), the ops always marked, and the library's choice;
* the ratios marked / plain, so the threshold can be read off the table.
"""

import argparse
import contextlib
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_kan.backend import tensorflow as tf_backend  # noqa: E402
from keras_kan.splines import data_knots, uniform_knots  # noqa: E402

SHAPES = [(800, 2, 5), (800, 5, 5), (256, 8, 5), (1024, 64, 5), (4096, 64, 20), (1024, 784, 5)]
ORDER = 3


def knots_for(n, grid, adapted, rng):
    if not adapted:
        return uniform_knots((-1.0, 1.0), grid, ORDER, n).astype("float32")
    samples = rng.uniform(-1, 1, (512, n)) ** 3  # clustered data: uneven knots
    return np.asarray(data_knots(samples, grid, ORDER, 0.02), dtype="float32")


def time_mode(mode, batch, n, grid, adapted, repeats, static):
    """(first call s, later call s) of basis @ kernel and its gradient, for `mode`."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (batch, n)).astype("float32"))
    knots = tf.constant(knots_for(n, grid, adapted, rng))
    n_basis = knots.shape[-1] - ORDER - 1
    kernel = tf.Variable(rng.normal(size=(n * n_basis, 4)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec((batch if static else None, n), tf.float32)])
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf_backend.spline_matmul(x, knots, ORDER, not adapted, kernel)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, kernel])

    threshold = tf_backend.MARK_FOR_XLA_FROM
    context = tf_backend.plain_graphs() if mode == "plain" else contextlib.nullcontext()
    if mode == "marked":
        tf_backend.MARK_FOR_XLA_FROM = 0
    try:
        with context:
            t0 = time.perf_counter()
            step(x)[0].numpy()
            first = time.perf_counter() - t0
            for _ in range(3):
                step(x)[0].numpy()
            t0 = time.perf_counter()
            for _ in range(repeats):
                step(x)[0].numpy()
            later = (time.perf_counter() - t0) / repeats
    finally:
        tf_backend.MARK_FOR_XLA_FROM = threshold
    return first, later


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    time_mode("marked", 64, 2, 5, True, 1, False)  # warm up TensorFlow and XLA
    print(f"threshold MARK_FOR_XLA_FROM = {tf_backend.MARK_FOR_XLA_FROM} basis elements")
    print(f"unknown batch counts as UNKNOWN_BATCH = {tf_backend.UNKNOWN_BATCH}")
    print("| B when traced | n | G | knots | B n K | first call s: plain / marked / chosen | "
          "per call ms: plain / marked / chosen | marked/plain: first, per call |")
    print("|---|---|---|---|---|---|---|---|")
    for batch, n, grid in SHAPES:
        for static in (True, False):
            for adapted in (False, True):
                r = {m: time_mode(m, batch, n, grid, adapted, args.repeats, static)
                     for m in ("plain", "marked", "chosen")}
                size = batch * n * (grid + ORDER)
                row(batch if static else f"None ({batch})", n, grid, adapted, size, r)


def row(batch, n, grid, adapted, size, r):
    print(f"| {batch} | {n} | {grid} | {'adapted' if adapted else 'uniform'} | {size} "
          f"| {r['plain'][0]:.2f} / {r['marked'][0]:.2f} / {r['chosen'][0]:.2f} "
          f"| {r['plain'][1] * 1e3:.2f} / {r['marked'][1] * 1e3:.2f} / "
          f"{r['chosen'][1] * 1e3:.2f} "
          f"| {r['marked'][0] / r['plain'][0]:.1f}x, "
          f"{r['marked'][1] / r['plain'][1]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
