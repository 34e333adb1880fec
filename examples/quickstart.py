"""The canonical first run of keras_kan (KAN paper, pykan's tutorial) end to end.

Learn f(x, y) = exp(cos(pi x) + y^2) from 1000 random points in [0, 1]^2
(800 train / 200 test) with a [2, 5, 1] KAN (grid 5, cubic splines, seed 0):
20 L-BFGS steps with pykan's lamb=0.01, lamb_entropy=10; prune (the hidden
layer shrinks to the one node the function needs); 100 more steps; make every
edge symbolic (`auto_symbolic` with the data: cos, x^2, exp, every constant
refit jointly in float64), 50 more L-BFGS steps, and print the formula with its
constants snapped (`exp(x_2**2 + cos(pi*x_1))`); save the model to
saved_models/quickstart.keras and check the reloaded outputs. Each fit shows one
progress bar over its L-BFGS steps, with the last step's loss and val_loss.

Run: `make demo` (TensorFlow) or `KERAS_BACKEND=jax python examples/quickstart.py`.
"""

import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING; errors show

from quiet_startup import import_quietly  # noqa: E402  (TensorFlow's start-up lines)

keras, np, _ = import_quietly("keras", "numpy", "keras_kan")

from keras_kan import KAN, KANRegularizer, fit_lbfgs, prune, set_regularizer  # noqa: E402
from keras_kan.datasets import create_dataset  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "output")
SAVED = os.path.join(HERE, "..", "saved_models", "quickstart.keras")


def rmse(model, x, y):
    pred = keras.ops.convert_to_numpy(model(x))
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - y) ** 2)))


def report(stage, model, train, test):
    widths = [model.layers[0].grid.shape[0]] + [layer.units for layer in model.layers]
    print(f"{stage:<28} widths {str(widths):<10} train RMSE {rmse(model, *train):.2e}   "
          f"test RMSE {rmse(model, *test):.2e}")


def main():
    start = time.perf_counter()
    print(f"keras_kan quickstart on the {keras.backend.backend()} backend")
    train, test = create_dataset("exp_cos_sq",  # exp(cos(pi x) + y^2)
                                 n_var=2, n_samples=1000, ranges=(0, 1), seed=0, test_split=0.2)
    # pykan: lamb=0.01, lamb_l1=1, lamb_entropy=10  ->  l1 = 0.01, entropy = 0.01 * 10
    model = KAN([2, 5, 1], grid_size=5, spline_order=3, seed=0,
                regularizer=KANRegularizer(l1=0.01, entropy=0.1))
    model.compile(loss="mse")
    fit_lbfgs(model, *train, steps=20, update_grid=True, validation_data=test)
    report("20 L-BFGS steps (sparsity)", model, train, test)
    plot(model, train[0], "quickstart_trained.png")

    model = prune(model, train[0], verbose=1)
    set_regularizer(model, None)  # pykan's second fit has no penalty
    fit_lbfgs(model, *train, steps=100, update_grid=True, validation_data=test)
    report("pruned + 100 steps", model, train, test)
    plot(model, train[0], "quickstart_pruned.png")
    if symbolic_stage(model, train, test) is None:
        print("  symbolic stage skipped: sympy is not installed (pip install keras-kan[symbolic])")

    os.makedirs(os.path.dirname(SAVED), exist_ok=True)
    model.save(SAVED)
    reloaded = keras.saving.load_model(SAVED)
    x = test[0]
    diff = float(np.max(np.abs(keras.ops.convert_to_numpy(reloaded(x)) -
                               keras.ops.convert_to_numpy(model(x)))))
    status = "OK" if diff <= 1e-6 else "MISMATCH"
    print(f"saved {os.path.relpath(SAVED)}; reloaded outputs max |diff| = {diff:.1e} ({status})")
    print(f"total time {time.perf_counter() - start:.1f} s")
    return 0 if diff <= 1e-6 else 1


def plot(model, x, name):
    """Draw the network with its learned edge functions (needs the `plot` extra)."""
    from keras_kan import plot_kan

    path = os.path.join(OUT, name)
    try:
        plot_kan(model, x, to_file=path, title=name[:-4].replace("_", " "))
    except ImportError as error:  # matplotlib missing: say so, keep going
        print(f"  plot skipped: {error}")
        return
    print(f"  plot: {os.path.relpath(path)}")


def symbolic_stage(model, train, test, steps=50):
    """auto_symbolic in place with the data (per-edge choices, then a joint float64
    refit of a, b, c, d), `steps` L-BFGS steps, the snapped formula (needs sympy).

    Returns:
        `(formula, test RMSE)`, or None without sympy.
    """
    try:
        from keras_kan import symbolic
    except ImportError:
        return None
    symbolic.auto_symbolic(model, *train, verbose=1)  # one line per edge, the joint refit
    report("auto_symbolic", model, train, test)
    fit_lbfgs(model, *train, steps=steps, validation_data=test)
    report(f"symbolic + {steps} steps", model, train, test)
    expr = symbolic.symbolic_formula(model, *train, verbose=1)  # names any numeric edge left
    print(f"  formula: {expr}")
    plot(model, train[0], "quickstart_symbolic.png")
    return expr, rmse(model, *test)


if __name__ == "__main__":
    sys.exit(main())
