"""Continual learning: a KAN learns five bumps one region at a time without forgetting.

The target is `sum_c exp(-300 (x - c)^2)`, c in {-0.8, -0.4, 0, 0.4, 0.8}. Phase
`p` shows only region `p`, `[c_p - 0.2, c_p + 0.2]` (one fifth of [-1, 1]),
with `--points` evenly spaced samples, as pykan's tutorial
Example_8_continual_learning does; each phase is 100 L-BFGS steps. A
KAN([1, 1]) with G = 200, `use_base=False` and `scales_trainable=False` (only
the spline coefficients learn, pykan's `base_fun='zero', sp_trainable=False,
sb_trainable=False`) changes only the B-splines under the current region, so
the earlier regions keep their fit. A tanh MLP with about as many parameters
trained the same way forgets them.

Prints the RMSE on every region seen so far after each phase and writes the
paper's figure (predictions after each phase) to
examples/output/continual_learning.png.

Run: `python examples/continual_learning.py [--quick] [--steps 100] [--points 100]`.
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_kan  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")
CENTERS = (-0.8, -0.4, 0.0, 0.4, 0.8)


def target(x):
    return sum(np.exp(-300.0 * (x - c) ** 2) for c in CENTERS)


def region(p, points):
    """Phase `p`'s inputs `(points, 1)`: evenly spaced over `[c_p - 0.2, c_p + 0.2]`."""
    return np.linspace(CENTERS[p] - 0.2, CENTERS[p] + 0.2, points)[:, None]


def rmse(model, x):
    pred = np.asarray(ops.convert_to_numpy(model(x.astype("float32"))), np.float64)
    return float(np.sqrt(np.mean((pred - target(x)) ** 2)))


def make_kan(grid_size, seed):
    model = keras_kan.KAN([1, 1], grid_size=grid_size, noise_scale=0.1, use_base=False,
                          scales_trainable=False, seed=seed)
    model.compile(loss="mse")
    return model


def make_mlp(width, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(width, activation="tanh"),
                              keras.layers.Dense(width, activation="tanh"),
                              keras.layers.Dense(1)], name="mlp")
    model.compile(loss="mse")
    return model


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def run(models, phases, steps, points):
    """Trains every model phase by phase. Returns `({name: rmse (phases, phases)}, curves)`."""
    grid = np.linspace(-1, 1, 1001)[:, None]
    errors = {name: np.full((phases, phases), np.nan) for name in models}
    curves = {name: [] for name in models}
    for p in range(phases):
        x = region(p, points)
        y = target(x)
        for name, model in models.items():
            keras_kan.fit_lbfgs(model, x.astype("float32"), y.astype("float32"), steps=steps,
                                verbose=0)
            for q in range(p + 1):
                errors[name][p, q] = rmse(model, region(q, 1000))
            curves[name].append(np.asarray(ops.convert_to_numpy(model(grid.astype("float32")))))
        print(f"  after phase {p + 1}: " + "   ".join(
            f"{name} RMSE " + " ".join(f"{e:.1e}" for e in errors[name][p, : p + 1])
            for name in models), flush=True)
    return errors, (grid, curves)


def plot(curves, phases, points, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure.")
        return
    grid, by_model = curves
    fig, axes = plt.subplots(len(by_model) + 1, phases, figsize=(2.6 * phases, 6), sharey=True)
    for p in range(phases):
        x = region(p, points)
        axes[0, p].plot(grid[:, 0], target(grid[:, 0]), color="0.8")
        axes[0, p].plot(x[:, 0], target(x[:, 0]), ".", color="k", markersize=2)
        axes[0, p].set_title(f"phase {p + 1}: data")
        for row, (name, curve) in enumerate(by_model.items(), start=1):
            axes[row, p].plot(grid[:, 0], target(grid[:, 0]), color="0.8")
            axes[row, p].plot(grid[:, 0], curve[p][:, 0], color="C0" if row == 1 else "C3")
            axes[row, p].set_title(f"{name} after phase {p + 1}", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"figure: {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="three phases, 20 steps each, no MLP, no figure (for tests)")
    parser.add_argument("--steps", type=int, default=100, help="L-BFGS steps per phase")
    parser.add_argument("--points", type=int, default=100, help="samples per phase")
    parser.add_argument("--grid-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    phases, steps = (3, 20) if args.quick else (5, args.steps)
    models = {"KAN": make_kan(args.grid_size, args.seed)}
    if not args.quick:
        kan_params = trainable_count(models["KAN"])
        # [1, W, W, 1] has W^2 + 4 W + 1 parameters: the W closest to the KAN's count.
        width = int(round((-4 + np.sqrt(16 + 4 * (kan_params - 1))) / 2))
        models["MLP"] = make_mlp(width, args.seed)
    print(f"Continual learning, backend {keras.backend.backend()}: {phases} phases x "
          f"{args.points} points, {steps} L-BFGS steps each; trainable parameters: "
          + ", ".join(f"{n} {trainable_count(m)}" for n, m in models.items()))
    start = time.perf_counter()
    errors, curves = run(models, phases, steps, args.points)
    print(f"  ({time.perf_counter() - start:.1f} s)")
    if not args.quick:
        plot(curves, phases, args.points, os.path.join(OUT, "continual_learning.png"))
    return errors


if __name__ == "__main__":
    main()
