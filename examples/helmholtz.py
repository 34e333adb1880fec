"""Solve jaxKAN's 2-D Helmholtz problem with a physics-informed KAN, and read its formula.

    lap u + k^2 u = q  on [-1, 1]^2,  u = 0 on the boundary,  k = 1,
    q = (k^2 - pi^2 - (4 pi)^2) sin(pi x) sin(4 pi y),

whose solution is u = sin(pi x) sin(4 pi y) (Rigas et al. 2024, arXiv 2407.17611, with
a1 = 1, a2 = 4; their [2, 8, 8, 1] KANs trained with Adam reached a relative L2 error of
2.07% vanilla, 0.10% with adaptive training). Here a KAN([2, 2, 1]) trains with
`examples/poisson.py`'s 2024 recipe (L-BFGS, grids 5 -> 10 -> 20), a tanh MLP gets the
same number of L-BFGS steps, and the KAN is then made symbolic on the objective
(`auto_symbolic(model, mesh, objective=...)`). In the measured run (JAX, float32) the
KAN does not find this solution (rel L2 0.87, its formula 1.05) and the MLP wins (4.6e-3),
see docs/benchmarks.md#helmholtz-jaxkans-2-d-case.

Prints the relative L2 error on a fresh 101 x 101 grid, parameters and times.

Run: `python examples/helmholtz.py [--float64] [--quick] [--no-mlp]` (any KERAS_BACKEND).
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
import poisson  # noqa: E402

import keras_kan  # noqa: E402

A1, A2, K = 1.0, 4.0, 1.0
JAXKAN = {"vanilla": 2.07e-2, "adaptive": 1.0e-3}  # relative L2, [2, 8, 8, 1], Adam


def exact(x):
    """`(B, 2)` -> `(B, 1)`: u = sin(a1 pi x) sin(a2 pi y)."""
    return np.sin(A1 * np.pi * x[:, :1]) * np.sin(A2 * np.pi * x[:, 1:])


def helmholtz_objective(mesh, boundary, alpha=0.01):
    """`alpha * mean((lap u + k^2 u - q)^2) + mean(u(boundary)^2)`."""
    q = (K**2 - (A1 * np.pi) ** 2 - (A2 * np.pi) ** 2) * exact(np.asarray(mesh, np.float64))
    dtype = keras.config.floatx()
    m, b, q = (ops.convert_to_tensor(np.asarray(a, dtype)) for a in (mesh, boundary, q))

    def objective(model):
        residual = keras_kan.autodiff.laplacian(model, m) + K**2 * model(m) - q
        return alpha * ops.mean(residual**2) + ops.mean(model(b) ** 2)

    return objective


def relative_l2(predict, n=101):
    mesh, _, _ = poisson.problem(n)
    mesh = mesh.astype(np.float64)
    pred = np.asarray(predict(mesh), np.float64).reshape(-1, 1)
    return float(np.linalg.norm(pred - exact(mesh)) / np.linalg.norm(exact(mesh)))


def model_predict(model):
    return lambda x: ops.convert_to_numpy(model(np.asarray(x, keras.config.floatx())))


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def evaluate_against_mlp(model, kan_seconds, mesh, objective, relative_l2, solution, jaxkan,
                         mlp_steps, mlp_width, seed, formula=True, mlp=True):
    """The trained KAN's error, its formula's (auto_symbolic on `objective`), and a tanh MLP's
    at the KAN's number of L-BFGS steps, then at its wall time; each printed as it comes.

    `relative_l2(predict)`: the error of `predict: (B, 2) -> (B, 1)` on the problem's
    fresh grid; `jaxkan`: the published errors printed beside the KAN's. Returns a dict of
    the errors, parameters and seconds.
    """
    result = {"kan": relative_l2(model_predict(model)), "kan_params": trainable(model),
              "kan_seconds": kan_seconds}
    print(f"  KAN [2, 2, 1]: rel L2 {result['kan']:.2e}, {result['kan_params']} trainable "
          f"parameters, {kan_seconds:.1f} s   (jaxKAN [2, 8, 8, 1]: {jaxkan['vanilla']:.2e} "
          f"vanilla, {jaxkan['adaptive']:.2e} adaptive)", flush=True)
    if formula:
        start = time.perf_counter()
        keras_kan.symbolic.auto_symbolic(model, mesh, objective=objective,
                                         lib=["x", "x^2", "sin", "cos", "exp", "tanh"])
        expr = keras_kan.symbolic.symbolic_formula(model, mesh, objective=objective,
                                                   precision=None)
        result["formula"] = relative_l2(  # numeric edges left in it come from the model
            lambda z: keras_kan.symbolic.evaluate_formula(expr, z, model))
        result["formula_seconds"] = time.perf_counter() - start
        print(f"  KAN formula: {expr}: rel L2 {result['formula']:.2e} "
              f"({result['formula_seconds']:.1f} s)", flush=True)
    for label in ("same steps", "same time") if mlp else ():
        net, _, seconds = poisson.train_mlp(mesh, None, None, mlp_steps, mlp_width, seed,
                                            objective=objective, solution=solution)
        result[f"mlp {label}"] = relative_l2(model_predict(net))
        print(f"  MLP [2, {mlp_width}, {mlp_width}, 1] tanh, {label} ({mlp_steps} L-BFGS "
              f"steps): rel L2 {result[f'mlp {label}']:.2e}, {net.count_params()} "
              f"parameters, {seconds:.1f} s", flush=True)
        mlp_steps = max(1, int(mlp_steps * kan_seconds / seconds))  # as long as the KAN took
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="21 x 21 mesh, grids 5, 10")
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--steps", type=int, default=100, help="L-BFGS steps per grid")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--no-mlp", action="store_true")
    parser.add_argument("--mlp-width", type=int, default=40)
    args = parser.parse_args(argv)
    if args.float64:
        keras.config.set_floatx("float64")
    n, grids = (21, (5, 10)) if args.quick else (51, (5, 10, 20))
    mesh, boundary, _ = poisson.problem(n)
    objective = helmholtz_objective(mesh, boundary)
    print(f"Helmholtz (a1={A1:g}, a2={A2:g}, k={K:g}), backend {keras.backend.backend()}, "
          f"{keras.config.floatx()}: {len(mesh)} mesh points, {args.steps} steps per grid")
    start = time.perf_counter()
    model, rows = poisson.train_kan(mesh, boundary, None, grids, args.steps, args.seed,
                                    recipe="2024", objective=objective, solution=exact)
    kan_seconds = time.perf_counter() - start
    result = evaluate_against_mlp(model, kan_seconds, mesh, objective, relative_l2, exact,
                                  JAXKAN, args.steps * len(grids), args.mlp_width, args.seed,
                                  mlp=not args.no_mlp)
    return result


if __name__ == "__main__":
    main()
