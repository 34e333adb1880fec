"""Solve jaxKAN's 1-D diffusion (heat) problem with a physics-informed KAN, and read its formula.

    u_t = D u_xx + f  on x in [0, 1], t in [0, 1],  D = 1,
    f = exp(-t) (pi^2 - 1) sin(pi x),
    u(x, 0) = sin(pi x),  u(0, t) = u(1, t) = 0,

whose solution is u = exp(-t) sin(pi x). This is the diffusion case of Rigas et al. 2024
(arXiv 2407.17611; jaxKAN's notebook "1. Diffusion Equation"): their [2, 8, 8, 1] KANs
trained 1e5 Adam steps on 4096 Sobol points reached a relative L2 error of 0.19% vanilla,
0.021% with adaptive training. Here the inputs are the columns `(x, t)` of a KAN([2, 2, 1])
trained with `examples/poisson.py`'s 2024 recipe (L-BFGS, grids 5 -> 10 -> 20) on an
n x n mesh; `u_t` is `keras_kan.pde.partial`, `u_xx` `keras_kan.pde.mixed_partial` (the
Hessian diagonal). The loss is `weighted_sum` of the mean squared PDE residual (weight
`--alpha`), of the initial-condition misfit and of the boundary values. A tanh MLP gets the
same number of L-BFGS steps, then the KAN's wall time, and the KAN is made symbolic on the
objective (`auto_symbolic(model, mesh, objective=...)`).

Prints the relative L2 error on a fresh 101 x 101 grid, parameters and times
(docs/benchmarks.md#heat-equation).

Run: `python examples/heat.py [--float64] [--quick] [--no-mlp]` (any KERAS_BACKEND).
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helmholtz  # noqa: E402
import poisson  # noqa: E402

from keras_kan import pde  # noqa: E402

D = 1.0
JAXKAN = {"vanilla": 1.9e-3, "adaptive": 2.1e-4}  # relative L2, [2, 8, 8, 1], Adam


def exact(z):
    """`(B, 2)` columns `(x, t)` -> `(B, 1)`: u = exp(-t) sin(pi x)."""
    return np.exp(-z[:, 1:]) * np.sin(np.pi * z[:, :1])


def source(z):
    """`(B, 2)` -> `(B, 1)`: f = u_t - D u_xx of the exact solution."""
    return (D * np.pi**2 - 1.0) * exact(z)


def problem(n=41):
    """`(mesh (n^2, 2), initial (n, 2), boundary (2n, 2))` on [0, 1]^2, float32."""
    line = np.linspace(0.0, 1.0, n)
    gx, gt = np.meshgrid(line, line, indexing="ij")
    mesh = np.stack([gx.ravel(), gt.ravel()], 1)
    zero, one = np.zeros(n), np.ones(n)
    initial = np.stack([line, zero], 1)
    boundary = np.concatenate([np.stack([zero, line], 1), np.stack([one, line], 1)])
    return tuple(a.astype("float32") for a in (mesh, initial, boundary))


def heat_objective(mesh, initial, boundary, alpha=0.01):
    """`alpha * mean((u_t - D u_xx - f)^2) + mean((u(x, 0) - sin(pi x))^2)
    + mean(u(boundary)^2)`, as `objective(model)`."""
    dtype = keras.config.floatx()
    f = source(np.asarray(mesh, np.float64))
    u0 = exact(np.asarray(initial, np.float64))
    m, i, b, f, u0 = (ops.convert_to_tensor(np.asarray(a, dtype))
                      for a in (mesh, initial, boundary, f, u0))

    def objective(model):
        residual = pde.partial(model, m, 1) - D * pde.mixed_partial(model, m, 0, 0) - f
        return pde.weighted_sum({"pde": ops.mean(residual**2),
                                 "initial": ops.mean((model(i) - u0) ** 2),
                                 "boundary": ops.mean(model(b) ** 2)}, {"pde": alpha})

    return objective


def relative_l2(predict, n=101):
    mesh = problem(n)[0].astype(np.float64)
    pred = np.asarray(predict(mesh), np.float64).reshape(-1, 1)
    return float(np.linalg.norm(pred - exact(mesh)) / np.linalg.norm(exact(mesh)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="an 11 x 11 mesh, grids 5 and 10, 5 steps each (smoke run)")
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--n", type=int, default=31, help="mesh points per side")
    parser.add_argument("--grids", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--steps", type=int, default=100, help="L-BFGS steps per grid")
    parser.add_argument("--alpha", type=float, default=0.01, help="weight of the residual")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--no-mlp", action="store_true")
    parser.add_argument("--no-formula", action="store_true")
    parser.add_argument("--mlp-width", type=int, default=40)
    args = parser.parse_args(argv)
    if args.float64:
        keras.config.set_floatx("float64")
    n, grids, steps = (11, (5, 10), 5) if args.quick else (args.n, args.grids, args.steps)
    mesh, initial, boundary = problem(n)
    objective = heat_objective(mesh, initial, boundary, args.alpha)
    print(f"Heat u_t = {D:g} u_xx + f, backend {keras.backend.backend()}, "
          f"{keras.config.floatx()}: {len(mesh)} mesh points, {steps} steps per grid")
    start = time.perf_counter()
    model, _ = poisson.train_kan(mesh, None, None, grids, steps, args.seed, recipe="2024",
                                 objective=objective, solution=exact)
    kan_seconds = time.perf_counter() - start
    result = helmholtz.evaluate_against_mlp(
        model, kan_seconds, mesh, objective, relative_l2, exact, JAXKAN, steps * len(grids),
        args.mlp_width, args.seed, formula=not args.no_formula, mlp=not args.no_mlp)
    return result


if __name__ == "__main__":
    main()
