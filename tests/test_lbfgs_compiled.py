"""keras_kan.lbfgs_compiled against the host reference (keras_kan.lbfgs_core).

The same problems run through both: `run_steps` (keras.ops, the variables'
dtype) and `LBFGS.step` (float64 NumPy). Tolerances: in float64 both paths
do the same arithmetic up to the order of summation in the dot products
(about 1e-16 relative per operation), so a well-conditioned problem agrees to
1e-9 over several steps. In float32 the compiled path's dot products,
trial points and curvature pairs carry float32 rounding (about 6e-8
relative) where the host keeps float64 and only rounds the trial points, and
L-BFGS amplifies such differences from iteration to iteration (the line
search picks other trial steps once a comparison flips), so the loss
trajectories are compared at 1e-3 relative on the first steps of a smooth
problem and, for a KAN fit, at the level the fit reaches.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

import keras_kan
from keras_kan import lbfgs_compiled as lc
from keras_kan.lbfgs_core import LBFGS

# --- problems with closed-form gradients (backend-independent keras.ops) --------------

N = 8
_RNG = np.random.default_rng(0)
_M = _RNG.normal(size=(N, N))
A = _M @ _M.T / N + np.eye(N)  # symmetric positive definite, condition ~ 10
B = _RNG.normal(size=N)
X_STAR = np.linalg.solve(A, B)


def quadratic(x):
    """`f = x.A x / 2 - b.x`, `g = A x - b`: minimizer `A^-1 b`."""
    a, b = ops.convert_to_tensor(A, x.dtype), ops.convert_to_tensor(B, x.dtype)
    ax = ops.matmul(a, x)
    return 0.5 * ops.sum(x * ax) - ops.sum(b * x), ax - b


def rosenbrock(x):
    """The chained Rosenbrock function and its gradient (minimum 0 at all ones)."""
    lo, hi = x[:-1], x[1:]
    f = ops.sum(100.0 * (hi - lo**2) ** 2 + (1.0 - lo) ** 2)
    inner = -400.0 * lo * (hi - lo**2) - 2.0 * (1.0 - lo)
    outer = 200.0 * (hi - lo**2)
    zero = ops.zeros((1,), x.dtype)
    return f, ops.concatenate([inner, zero]) + ops.concatenate([zero, outer])


def _compiled_losses(fn, x0, steps, dtype, **settings):
    def evaluate(x, aux):
        f, g = fn(x)
        return ops.where(ops.isfinite(f), f, np.inf), g, aux

    cfg = lc.Config(settings.get("history_size", 10), 20, 25,
                    settings.get("line_search", "strong_wolfe"), 1e-32, 1e-32, 1.0, 1e-32,
                    steps)
    state = lc.initial_state(x0.size, cfg.history_size, dtype)
    x, _, _, losses, done, status = lc.run_steps(
        cfg, evaluate, ops.convert_to_tensor(x0.astype(dtype)), state, (), steps)
    return (np.asarray(ops.convert_to_numpy(losses), np.float64)[:int(done)],
            np.asarray(ops.convert_to_numpy(x), np.float64), int(status))


def _host_losses(fn, x0, steps, dtype, **settings):
    class Evaluate:
        def __call__(self, x):
            f, g = fn(ops.convert_to_tensor(x.astype(dtype)))
            return float(f), np.asarray(ops.convert_to_numpy(g), np.float64)

        def round(self, x):
            return x.astype(dtype).astype(np.float64)

    evaluate = Evaluate()
    opt = LBFGS(settings.get("history_size", 10), 20, 25,
                settings.get("line_search", "strong_wolfe"), 1e-32, 1e-32, 1.0)
    x, losses = evaluate.round(x0), []
    for _ in range(steps):
        f, g = evaluate(x)
        x, f, g, _, _ = opt.step(evaluate, x, f, g)
        losses.append(f)
    return np.array(losses), x


def test_quadratic_reaches_the_known_minimizer_like_the_host():
    x0 = np.zeros(N)
    losses, x, status = _compiled_losses(quadratic, x0, 3, "float32")
    host, x_host = _host_losses(quadratic, x0, 3, "float32")
    f_star = -0.5 * B @ X_STAR
    assert status == 0 and len(losses) == 3
    np.testing.assert_allclose(x, X_STAR, atol=1e-4)
    np.testing.assert_allclose(losses, host, rtol=1e-5)
    np.testing.assert_allclose(losses[-1], f_star, rtol=1e-5)


def test_rosenbrock_trajectory_matches_the_host_in_float32():
    x0 = np.tile([-1.2, 1.0], 3)
    losses, _, _ = _compiled_losses(rosenbrock, x0, 2, "float32")
    host, _ = _host_losses(rosenbrock, x0, 2, "float32")
    # The first step: same trial points up to float32 rounding.
    np.testing.assert_allclose(losses[0], host[0], rtol=1e-3)
    assert losses[1] < 0.2 and host[1] < 0.2  # both well down the valley (from 24.2)


def test_fixed_step_mode_matches_the_host():
    x0 = np.zeros(N)
    losses, _, _ = _compiled_losses(quadratic, x0, 3, "float32", line_search=None)
    host, _ = _host_losses(quadratic, x0, 3, "float32", line_search=None)
    np.testing.assert_allclose(losses, host, rtol=1e-4)


def test_non_finite_start_is_reported_and_nothing_moves():
    def bad(x):
        return ops.sum(x) * np.inf, x

    losses, x, status = _compiled_losses(bad, np.ones(3), 2, "float32")
    assert status == 1 and len(losses) == 0
    np.testing.assert_array_equal(x, np.ones(3))


def test_no_finite_point_along_the_direction_stops_the_step():
    def cliff(x):  # finite only at the start: every trial step is inf
        f, g = quadratic(x)
        return ops.where(ops.all(x == 0.0), f, np.inf), g

    losses, x, status = _compiled_losses(cliff, np.zeros(N), 3, "float32")
    assert status == 2 and len(losses) == 0
    np.testing.assert_array_equal(x, np.zeros(N))


# --- fit_lbfgs: the compiled path against the host path -------------------------------


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2)).astype("float32")
    y = (np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2).astype("float32")
    return x, y


def _fit(compiled, steps=4, **kwargs):
    x, y = _data()
    model = keras_kan.KAN(width=[2, 2, 1], grid_size=3, seed=0)
    model.compile(loss="mse")
    history = keras_kan.fit_lbfgs(model, x, y, steps=steps, verbose=0, compiled=compiled,
                                  max_iter=5, **kwargs)
    return np.array(history.history["loss"]), model


@pytest.mark.slow
def test_kan_fit_trajectories_agree():
    host, _ = _fit(False, update_grid=True, grid_update_num=2, stop_grid_update_step=4)
    comp, model = _fit(True, update_grid=True, grid_update_num=2, stop_grid_update_step=4)
    assert len(comp) == len(host) == 4
    # float32 rounding differs (module docstring): same descent, same level.
    np.testing.assert_allclose(comp, host, rtol=0.05)
    assert comp[-1] < 0.5 * comp[0]


@pytest.mark.slow
def test_pde_objective_trajectories_agree():
    from keras_kan import autodiff

    g = np.linspace(-1, 1, 7, dtype="float32")
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    source = ops.convert_to_tensor(
        (-2 * np.pi**2 * np.sin(np.pi * pts[:, :1]) * np.sin(np.pi * pts[:, 1:])).astype("float32"))

    def objective(model):
        lap = autodiff.laplacian(model, ops.convert_to_tensor(pts))
        return ops.mean((ops.reshape(lap, (-1, 1)) - source) ** 2)

    runs = []
    for compiled in (False, True):
        model = keras_kan.KAN(width=[2, 2, 1], grid_size=3, seed=0)
        h = keras_kan.fit_lbfgs(model, objective=objective, steps=3, max_iter=5, verbose=0,
                                compiled=compiled)
        runs.append(np.array(h.history["loss"]))
    np.testing.assert_allclose(runs[1], runs[0], rtol=0.05)
    assert runs[1][-1] < runs[1][0]


def test_chunks_follow_the_callbacks():
    from keras_kan.callbacks import GridUpdate

    history = keras.callbacks.History()
    grid = GridUpdate(every=5, stop_after=12)
    assert lc.chunk_length([history], 100, 50) == 50
    assert lc.chunk_length([history], 7, 50) == 7
    grid.step = 0
    assert lc.chunk_length([history, grid], 100, 50) == 5  # next update at step 5
    grid.step = 10
    assert lc.chunk_length([grid], 100, 50) == 50  # no update at or after step 12... 15
    grid.step = 5
    assert lc.chunk_length([grid], 3, 50) == 3
    early = keras.callbacks.EarlyStopping(monitor="loss", patience=0)
    assert lc.chunk_length([history, early], 100, 50) == 1
    late = GridUpdate(every=5, stop_after=50, start=12)  # updates at 15, 20, ..., 45
    late.step = 0
    assert lc.chunk_length([late], 100, 50) == 15
    late.step = 15
    assert lc.chunk_length([late], 100, 50) == 5


@pytest.mark.slow
def test_early_stopping_and_history_see_every_step():
    x, y = _data()
    model = keras_kan.KAN(width=[2, 2, 1], grid_size=3, seed=0)
    model.compile(loss="mse")
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["loss"])))
    h = keras_kan.fit_lbfgs(model, x, y, steps=3, max_iter=3, verbose=0, compiled=True,
                            callbacks=[record])
    assert [e for e, _ in seen] == [0, 1, 2]
    assert [v for _, v in seen] == h.history["loss"]
    # The model holds the last step's accepted point: its loss is the last logged one.
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), h.history["loss"][-1],
                               rtol=1e-4)


# --- float64 end to end (a fresh interpreter: JAX needs x64 before any array) ---------

_FLOAT64_FIT = r"""
import json, os, numpy as np, keras
keras.config.set_floatx(os.environ["FLOATX"])
import keras_kan
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, size=(64, 1))
teacher = keras_kan.KAN(width=[1, 1], grid_size=5, seed=1, use_base=False, scales_trainable=False)
y = 100.0 * keras.ops.convert_to_numpy(teacher(x))  # size ~1, representable: optimum 0
xt, yt = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)

def objective(model):  # ops.sum: Keras 3.15's mean reductions divide in float32 on JAX
    return keras.ops.sum((model(xt) - yt) ** 2) / len(x)

out = {}
for compiled in (False, True):
    model = keras_kan.KAN(width=[1, 1], grid_size=5, seed=0, use_base=False,
                          scales_trainable=False)  # linear in the coefficients
    h = keras_kan.fit_lbfgs(model, objective=objective, steps=6, verbose=0, compiled=compiled)
    out[str(compiled)] = h.history["loss"]
    out["dtype"] = str(model.layers[-1].spline_kernel.dtype)
print("RESULT", json.dumps(out))
"""


def _float64_fit(floatx):
    env = dict(os.environ, FLOATX=floatx, JAX_ENABLE_X64="1" if floatx == "float64" else "0")
    proc = subprocess.run([sys.executable, "-c", _FLOAT64_FIT], env=env, capture_output=True,
                          text=True, timeout=600)
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
    assert line, proc.stderr[-3000:]
    return json.loads(line[0][len("RESULT "):])


@pytest.mark.slow
def test_float64_training_reaches_what_float32_cannot():
    r64, r32 = _float64_fit("float64"), _float64_fit("float32")
    assert r64["dtype"] == "float64" and r32["dtype"] == "float32"
    for compiled in ("False", "True"):
        assert r64[compiled][-1] < 1e-20, r64
        assert min(r32[compiled]) > 1e-18, r32  # float32 rounding: residuals ~1e-8
    # In float64 the two paths agree much more tightly than in float32.
    np.testing.assert_allclose(r64["True"][:2], r64["False"][:2], rtol=1e-6)
