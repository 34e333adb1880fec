"""Solve a 2-D Poisson equation with a physics-informed KAN (pykan's PDE-accuracy protocol).

    laplacian(u) = -2 pi^2 sin(pi x) sin(pi y)  on [-1, 1]^2,   u = 0 on the boundary,

whose solution is u = sin(pi x) sin(pi y). The loss is
`0.01 * mean(pde residual^2) + mean(u(boundary)^2)` on a 51 x 51 mesh (the
"interior" points, as pykan names them) and 4 x 51 boundary points. A
KAN([2, 2, 1]) trains 50 L-BFGS steps on grid 5, then is refined to grids 10
and 20, 50 steps each; the grids follow the mesh every 5 steps during the
first 20 steps of each stage (pykan's tutorial Example_7_PDE_accuracy). The
Laplacian comes from `keras_kan.autodiff`, the training from
`keras_kan.fit_lbfgs(model, objective=...)`. A tanh MLP with over 10x the
parameters trains the same way (150 L-BFGS steps) for comparison.

Prints the mesh MSE per grid beside pykan's printed numbers and writes a
figure (solution and error) to examples/output/poisson.png.

`--recipe 2024 --float64` is the documented PDE recipe instead (pykan's
May-2024 tutorial, Example_6B_PDE: scales `spline_scale = 1` and
`base_kernel = 1/sqrt(n) + 0.25 (2 z - 1)`, spline noise 0.1, a trainable
bias, uniform grid updates `grid_eps = 1` every 5 steps during the first 50,
100 L-BFGS steps per grid, float64): mesh MSE about 1e-7 at grid 20
(docs/benchmarks.md#solving-a-pde).

Run: `python examples/poisson.py [--recipe 2024 --float64] [--quick] [--no-mlp]`
(any KERAS_BACKEND).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if __name__ == "__main__" and "--float64" in sys.argv:
    os.environ.setdefault("JAX_ENABLE_X64", "1")  # before JAX creates any array

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_kan  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")
PYKAN_MSE = {5: 3.11e-3, 10: 1.03e-3, 20: 1.74e-4}  # printed by pykan's tutorial
PYKAN_2024_MSE = {5: 3.71e-5, 10: 1.16e-6, 20: 3.01e-7}  # pykan's May-2024 tutorial

# How the KAN is initialized and trained. "0.2.8": pykan 0.2.8's tutorial
# (Example_7_PDE_accuracy). "2024": pykan's May-2024 tutorial (Example_6B_PDE).
RECIPES = {
    "0.2.8": dict(init="0.2.8", noise_scale=0.3, noise_scale_base=None, use_bias=False,
                  grid_eps=0.02, steps=50, update_every=5, stop_update=20, alpha=0.01),
    "2024": dict(init="2024", noise_scale=0.1, noise_scale_base=0.25, use_bias=True,
                 grid_eps=1.0, steps=100, update_every=5, stop_update=50, alpha=0.01),
}


def exact(x):
    """`(B, 2)` -> `(B, 1)`: u = sin(pi x) sin(pi y)."""
    return np.sin(np.pi * x[:, :1]) * np.sin(np.pi * x[:, 1:])


def square_mesh(n):
    """`(x_mesh (n^2, 2), x_boundary (4n, 2))`: an n x n mesh of [-1, 1]^2 and its edges,
    float64 NumPy."""
    line = np.linspace(-1.0, 1.0, n)
    gx, gy = np.meshgrid(line, line, indexing="ij")
    mesh = np.stack([gx.ravel(), gy.ravel()], 1)
    one = np.ones(n)
    boundary = np.concatenate([np.stack([-one, line], 1), np.stack([one, line], 1),
                               np.stack([line, -one], 1), np.stack([line, one], 1)])
    return mesh, boundary


def problem(n=51):
    """`(x_mesh (n^2, 2), x_boundary (4n, 2), source (n^2, 1))` as float32 NumPy."""
    mesh, boundary = square_mesh(n)
    source = -2.0 * np.pi**2 * exact(mesh)
    return mesh.astype("float32"), boundary.astype("float32"), source.astype("float32")


def poisson_objective(mesh, boundary, source, alpha=0.01):
    """`objective(model)`: `alpha * mean((lap u - f)^2) + mean(u(boundary)^2)`."""
    dtype = keras.config.floatx()
    mesh, boundary, source = (ops.convert_to_tensor(np.asarray(a, dtype))
                              for a in (mesh, boundary, source))

    def objective(model):
        residual = keras_kan.autodiff.laplacian(model, mesh) - source
        return alpha * ops.mean(residual**2) + ops.mean(model(boundary) ** 2)

    return objective


def mse(model, mesh, solution=None):
    """Mean squared error of the model against `solution` (default: `exact`) on `mesh`."""
    pred = np.asarray(ops.convert_to_numpy(model(np.asarray(mesh, keras.config.floatx()))),
                      np.float64)
    return float(np.mean((pred - (solution or exact)(mesh.astype(np.float64))) ** 2))


def init_2024(model, noise_scale_base, seed):
    """pykan 0.1's initialization of the scales, in place: `spline_scale = 1` and
    `base_kernel = 1/sqrt(n) + noise_scale_base * (2 z - 1)`, `z` standard normal."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        n, m = layer.base_kernel.shape
        layer.spline_scale.assign(np.ones((n, m), layer.spline_scale.dtype))
        z = rng.standard_normal((n, m))
        layer.base_kernel.assign((1 / np.sqrt(n) + noise_scale_base * (2 * z - 1)).astype(
            layer.base_kernel.dtype))


def new_kan(grid, seed, recipe):
    """KAN([2, 2, 1]) on grid `grid`, initialized as `recipe` says."""
    model = keras_kan.KAN([2, 2, 1], grid_size=grid, seed=seed, grid_eps=recipe["grid_eps"],
                          noise_scale=recipe["noise_scale"], use_bias=recipe["use_bias"])
    if recipe["init"] == "2024":
        init_2024(model, recipe["noise_scale_base"], seed)
    return model


def train_kan(mesh, boundary, source, grids, steps=None, seed=1, reference=False,
              recipe="0.2.8", objective=None, solution=None):
    """KAN([2, 2, 1]) through `grids`; `reference` prints pykan's numbers beside each grid.

    `recipe`: a name in RECIPES or a dict like them; `steps` overrides its steps.
    `objective`, `solution`: another equation (default: this Poisson problem)."""
    recipe = dict(RECIPES[recipe] if isinstance(recipe, str) else recipe)
    if steps is not None:
        recipe["steps"] = steps
    steps, stop = recipe["steps"], min(recipe["stop_update"], recipe["steps"])
    if objective is None:
        objective = poisson_objective(mesh, boundary, source, recipe["alpha"])
    printed = PYKAN_2024_MSE if recipe["init"] == "2024" else PYKAN_MSE
    rows, model = [], None
    for grid in grids:
        start = time.perf_counter()
        if model is None:
            model = new_kan(grid, seed, recipe)
        else:
            model = keras_kan.refine(model, grid, mesh)
        # Grid updates on the mesh every `update_every` steps during the first `stop`.
        keras_kan.fit_lbfgs(model, mesh, objective=objective, steps=steps, update_grid=True,
                            grid_update_num=max(1, stop // recipe["update_every"]),
                            stop_grid_update_step=stop, verbose=0)
        rows.append((grid, mse(model, mesh, solution), time.perf_counter() - start))
        pykan = (f"   pykan: {printed[grid]:.2e}" if reference and grid in printed else "")
        print(f"  KAN grid {grid:>3}: mesh MSE {rows[-1][1]:.2e}{pykan}  ({rows[-1][2]:.1f} s)",
              flush=True)
    return model, rows


def train_mlp(mesh, boundary, source, steps, width, seed, objective=None, solution=None):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(width, activation="tanh"),
                              keras.layers.Dense(width, activation="tanh"),
                              keras.layers.Dense(1)], name="mlp")
    start = time.perf_counter()
    keras_kan.fit_lbfgs(model, objective=objective or poisson_objective(mesh, boundary, source),
                        steps=steps, verbose=0)
    return model, mse(model, mesh, solution), time.perf_counter() - start


def plot(model, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure.")
        return
    mesh, _, _ = problem(101)
    pred = np.asarray(ops.convert_to_numpy(model(mesh)), np.float64).reshape(101, 101)
    error = pred - exact(mesh.astype(np.float64)).reshape(101, 101)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, values, title in ((axes[0], pred, "KAN solution u(x, y)"),
                              (axes[1], error, "error u - sin(pi x) sin(pi y)")):
        image = ax.imshow(values.T, origin="lower", extent=(-1, 1, -1, 1), cmap="RdBu_r")
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"figure: {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a 21 x 21 mesh, grids 5 and 10, 10 steps each (for tests)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="0.2.8",
                        help="0.2.8: pykan 0.2.8's tutorial (default); 2024: pykan's "
                        "May-2024 tutorial, the documented PDE recipe (with --float64)")
    parser.add_argument("--float64", action="store_true",
                        help="train in float64 (keras floatx; JAX_ENABLE_X64 on JAX)")
    parser.add_argument("--steps", type=int, default=None,
                        help="L-BFGS steps per grid (default: the recipe's, 50 or 100)")
    parser.add_argument("--no-mlp", action="store_true", help="skip the MLP baseline")
    parser.add_argument("--mlp-width", type=int, default=40)
    parser.add_argument("--seed", type=int, default=None,
                        help="default: 1 for recipe 0.2.8, 2 for recipe 2024")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = 2 if args.recipe == "2024" else 1
    if args.float64:
        keras.config.set_floatx("float64")
    default_steps = RECIPES[args.recipe]["steps"]
    n, grids, steps = ((21, (5, 10), 10) if args.quick else
                       (51, (5, 10, 20), args.steps or default_steps))
    mesh, boundary, source = problem(n)
    print(f"Poisson on [-1, 1]^2, backend {keras.backend.backend()}, "
          f"{keras.config.floatx()}, recipe {args.recipe}: {len(mesh)} mesh + "
          f"{len(boundary)} boundary points, {steps} L-BFGS steps per grid")
    start = time.perf_counter()
    model, rows = train_kan(mesh, boundary, source, grids, steps, args.seed,
                            reference=not args.quick and steps == default_steps,
                            recipe=args.recipe)
    kan_params = model.count_params() - sum(int(np.prod(v.shape))
                                            for v in model.non_trainable_variables)
    print(f"  KAN [2, 2, 1]: {kan_params} trainable parameters, "
          f"{time.perf_counter() - start:.1f} s")
    result = {"kan": rows, "kan_params": kan_params}
    if not args.no_mlp:
        mlp, mlp_mse, seconds = train_mlp(mesh, boundary, source, steps * len(grids),
                                          args.mlp_width, args.seed)
        result.update(mlp_mse=mlp_mse, mlp_params=mlp.count_params())
        print(f"  MLP [2, {args.mlp_width}, {args.mlp_width}, 1] tanh: {mlp.count_params()} "
              f"parameters, {steps * len(grids)} steps: mesh MSE {mlp_mse:.2e} "
              f"({seconds:.1f} s)")
    if not args.no_plot and not args.quick:
        plot(model, os.path.join(OUT, "poisson.png"))
    return result


if __name__ == "__main__":
    main()
