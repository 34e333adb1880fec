"""The KAN paper's grid-extension experiment: accuracy against grid size.

A [2, 1, 1] KAN learns f(x, y) = exp(sin(pi x) + y^2) on [-1, 1]^2 (1000 train /
1000 test points). It trains 200 L-BFGS steps on grid 3, then is refined to
grids 5, 10, 20, 50 (same function, finer splines), 200 steps each, as in
pykan's tutorial (grid updates on the first 50 steps of each stage). Prints a
table of grid size against train/test RMSE and writes a log-log plot of test
RMSE against grid size (with the G^-4 slope) to examples/output/.

Run: `python examples/grid_extension.py [--float64] [--steps 200] [--grids 3,5,10,20,50]`.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_kan import KAN, fit_lbfgs, refine  # noqa: E402
from keras_kan.datasets import create_dataset  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")


def rmse(model, x, y):
    pred = np.asarray(keras.ops.convert_to_numpy(model(x)), np.float64)
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def run(grids, steps, seed, data_seed, dtype):
    train, test = create_dataset("exp_sin_sq",  # exp(sin(pi x) + y^2)
                                 n_var=2, n_samples=2000, ranges=(-1, 1), seed=data_seed,
                                 test_split=0.5, dtype=dtype)
    rows = []
    model = None
    for grid in grids:
        start = time.perf_counter()
        if model is None:
            model = KAN([2, 1, 1], grid_size=grid, spline_order=3, seed=seed)
            model.compile(loss="mse")
        else:
            model = refine(model, grid, train[0])
        fit_lbfgs(model, *train, steps=steps, update_grid=True, verbose=0)
        rows.append((grid, rmse(model, *train), rmse(model, *test),
                     time.perf_counter() - start))
        print(f"  grid {grid:>3}: train RMSE {rows[-1][1]:.2e}  test RMSE {rows[-1][2]:.2e}  "
              f"({rows[-1][3]:.1f} s)", flush=True)
    return rows


def plot(rows, path, label):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    grids = np.array([r[0] for r in rows], float)
    train = np.array([r[1] for r in rows])
    test = np.array([r[2] for r in rows])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(grids, test, "o-", label=f"test RMSE ({label})")
    ax.loglog(grids, train, "s:", alpha=0.7, label=f"train RMSE ({label})")
    ref = test[0] * (grids / grids[0]) ** -4.0
    ax.loglog(grids, ref, "k--", alpha=0.5, label=r"$G^{-4}$")
    ax.set_xticks(grids)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("grid size G")
    ax.set_ylabel("RMSE")
    ax.set_title("[2,1,1] KAN on exp(sin(pi x) + y^2)")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="3,5,10,20,50")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1,
                        help="model seed (pykan's tutorial: KAN(..., seed=1))")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="dataset seed (pykan's create_dataset default: 0)")
    parser.add_argument("--float64", action="store_true", help="train in float64")
    args = parser.parse_args(argv)
    dtype = "float32"
    if args.float64:
        if keras.backend.backend() == "jax":
            import jax

            jax.config.update("jax_enable_x64", True)
        keras.config.set_floatx("float64")
        dtype = "float64"
    grids = [int(g) for g in args.grids.split(",")]
    print(f"grid extension on {keras.backend.backend()} ({dtype}), {args.steps} steps per grid, "
          f"model seed {args.seed}, data seed {args.data_seed}")
    rows = run(grids, args.steps, args.seed, args.data_seed, dtype)
    print()
    print("| grid | train RMSE | test RMSE | seconds |")
    print("| ---: | ---: | ---: | ---: |")
    for grid, tr, te, sec in rows:
        print(f"| {grid} | {tr:.2e} | {te:.2e} | {sec:.1f} |")
    name = f"grid_extension_{keras.backend.backend()}_{dtype}.png"
    path = plot(rows, os.path.join(OUT, name), dtype)
    if path:
        print(f"\nplot: {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
