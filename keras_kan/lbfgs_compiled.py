"""The L-BFGS algorithm of `keras_kan.lbfgs_core`, on `keras.ops`, for whole steps in one call.

`lbfgs_core` (float64 NumPy on the host) is the reference; this module is the
same algorithm written once on `keras.ops` (`while_loop`, `where`) over flat
parameter vectors, with the whole optimizer state as tensors, so a backend can
run several L-BFGS steps inside ONE compiled program (`jax.jit`,
`tf.function`): two-loop recursion over a fixed-size history buffer,
strong-Wolfe line search (bracketing, then zoom by safeguarded cubic
interpolation), the first-iteration scaling `min(1, 1/|g|_1) * lr`, the
`tolerance_ys` / `tolerance_grad` / `tolerance_change` tests, the `max_iter` /
`max_eval` budget, non-finite trial points as failed sufficient decrease, and
`forget_last_move` (a `has_prev` flag). The backend supplies
`evaluate(x (n,), aux) -> (f (), g (n,), aux)` (`aux`: the non-trainable values
the forward pass updates, threaded through on JAX, empty elsewhere) and
compiles `run_steps` (`keras_kan.backend.make_lbfgs_program`).

Precision: everything here runs in the dtype of the flat vector, i.e. the
variables' dtype (float32 by default; float64 under `floatx="float64"`). The
host path does the algorithm's arithmetic in float64 whatever the variables.

The line search is ONE while loop that evaluates the objective exactly once
per iteration: after each evaluation the bracketing and zoom decisions of
`lbfgs_core.strong_wolfe` are taken with `where` and give the next trial step
or the end, so the objective appears in the program at two places only (the
start of a chunk and the line search), which keeps compile time low.

State (a dict of tensors, `n` parameters, `m` = history size):
`S, Y (m, n)` the last `count` pairs in the last rows, oldest first; `rho (m,)`
`1/(y.s)`; `count ()`, `h_diag ()`, `prev_g, prev_s (n,)`, `has_prev ()` bool,
`n_iter ()` iterations over all steps (the very first one is scaled).
"""

import numpy as np
from keras import ops

from keras_kan import backend as kan_backend
from keras_kan.lbfgs_core import C1, C2, MAX_LS

__all__ = ["Config", "initial_state", "run_steps", "cubic_min", "two_loop", "CompiledSteps"]

_BRACKET, _ZOOM, _DONE = 0, 1, 2


class Config:
    """The static settings of a run (hashable: part of a compiled program's cache key)."""

    def __init__(self, history_size, max_iter, max_eval, line_search, tolerance_grad,
                 tolerance_change, learning_rate, tolerance_ys, capacity):
        self.history_size, self.max_iter, self.max_eval = (int(history_size), int(max_iter),
                                                           int(max_eval))
        self.line_search = line_search
        self.tolerance_grad, self.tolerance_change = float(tolerance_grad), float(tolerance_change)
        self.learning_rate, self.tolerance_ys = float(learning_rate), float(tolerance_ys)
        self.capacity = int(capacity)  # the most steps one call runs (size of the loss output)

    def key(self):
        return (self.history_size, self.max_iter, self.max_eval, self.line_search,
                self.tolerance_grad, self.tolerance_change, self.learning_rate,
                self.tolerance_ys, self.capacity)


def initial_state(n, history_size, dtype):
    """A fresh optimizer state for `n` parameters (see the module docstring)."""
    zeros = ops.zeros((n,), dtype)
    return {
        "S": ops.zeros((history_size, n), dtype), "Y": ops.zeros((history_size, n), dtype),
        "rho": ops.zeros((history_size,), dtype), "count": ops.convert_to_tensor(0, "int32"),
        "h_diag": ops.convert_to_tensor(1.0, dtype), "prev_g": zeros, "prev_s": zeros,
        "has_prev": ops.convert_to_tensor(False), "n_iter": ops.convert_to_tensor(0, "int32"),
    }


def _i32(v):
    return ops.convert_to_tensor(v, "int32")


def _pick(c, a, b):
    """`where(c, a, b)` on int32 values (no backend widens them to int64)."""
    return ops.where(c, _i32(a), _i32(b))


def _min(a, b):
    """Elementwise minimum by `where` (Keras 3's PyTorch `minimum`/`maximum` return
    float32 for float64 tensors, which would round the float64 path)."""
    return ops.where(a <= b, a, b)


def _max(a, b):
    return ops.where(a >= b, a, b)


def _dot(a, b):
    return ops.sum(a * b)


def _max_abs(v):
    return ops.max(ops.abs(v)) if v.shape[0] else ops.zeros((), v.dtype)


def _where(c, a, b):
    """`where` over matching nested structures (trials are tuples of tensors)."""
    if isinstance(a, dict):
        return {k: _where(c, a[k], b[k]) for k in a}
    if isinstance(a, (tuple, list)):
        return type(a)(_where(c, p, q) for p, q in zip(a, b))
    return ops.where(c, a, b)


def cubic_min(t1, f1, g1, t2, f2, g2, lo, hi):
    """`lbfgs_core.cubic_min` elementwise: the cubic's minimizer in [lo, hi], else the midpoint."""
    finite = ops.all(ops.isfinite(ops.stack([t1, f1, g1, t2, f2, g2]))) & (t1 != t2)
    dt = ops.where(t1 == t2, ops.ones_like(t1), t1 - t2)
    a = g1 + g2 - 3.0 * (f1 - f2) / dt
    disc = a * a - g1 * g2
    ok = finite & (disc >= 0)
    b = ops.where(t2 - t1 >= 0, ops.ones_like(t1), -ops.ones_like(t1)) * ops.sqrt(
        _max(disc, ops.zeros_like(disc)))
    denom = g2 - g1 + 2.0 * b
    ok = ok & (denom != 0)
    t = t2 - (t2 - t1) * (g2 + b - a) / ops.where(denom == 0, ops.ones_like(denom), denom)
    ok = ok & ops.isfinite(t)
    mid = 0.5 * (lo + hi)
    return ops.where(ok, _min(_max(ops.where(ok, t, mid), lo), hi), mid)


def two_loop(g, S, Y, rho, count, h_diag):
    """`-H g` over the last `count` rows of the history `S, Y (m, n)`, `rho (m,)`.

    Two `fori_loop`s over the `m` rows (rows before the last `count` are
    skipped by `where`): unrolled, the recursion made XLA's compile several
    times longer.
    """
    m = S.shape[0]
    first_valid = m - count

    def newest_first(k, carry):
        q, alphas = carry
        j = m - 1 - k
        alpha = ops.where(j >= first_valid, rho[j] * _dot(S[j], q), ops.zeros_like(h_diag))
        alphas = ops.where(ops.arange(m, dtype="int32") == j, alpha, alphas)
        return q - alpha * Y[j], alphas

    q, alphas = ops.fori_loop(0, m, newest_first, (-g, ops.zeros((m,), g.dtype)))

    def oldest_first(j, r):
        beta = ops.where(j >= first_valid, alphas[j] - rho[j] * _dot(Y[j], r),
                         ops.zeros_like(h_diag))
        return r + beta * S[j]

    return ops.fori_loop(0, m, oldest_first, q * h_diag)


def _strong_wolfe(phi, x, d, start, t0, aux, skip, probe, tolerance_change):
    """`lbfgs_core.strong_wolfe` as one while loop with one evaluation per iteration.

    `start = (t=0, f0, g0, gtd0)`; `skip`: return `start` without evaluating;
    `probe`: evaluate once at `t0` and return that trial (how `run_steps`
    evaluates a chunk's start without a second copy of the objective).
    Returns (accepted trial, aux, evaluations, saw_non_finite).
    """
    f0, gtd0 = start[1], start[3]
    d_norm = _max_abs(d)
    zero_i = ops.convert_to_tensor(0, "int32")
    state = {
        "phase": _pick(skip, _DONE, _BRACKET), "t_next": t0, "prev": start, "new": start,
        "A": start, "B": start, "single": ops.convert_to_tensor(False), "ls_iter": zero_i,
        "evals": zero_i, "insuf": ops.convert_to_tensor(False),
        "bad": ops.convert_to_tensor(False), "done": ops.convert_to_tensor(False), "aux": aux,
    }

    def lacks_decrease(trial):
        return ~(trial[1] <= f0 + C1 * trial[0] * gtd0)

    def meets_curvature(trial):
        return ops.abs(trial[3]) <= -C2 * gtd0

    def body(s):
        trial, aux_ = phi(s["t_next"], s["aux"])
        first = s["evals"] == 0
        bad = s["bad"] | ~ops.isfinite(trial[1])
        in_bracket = s["phase"] == _BRACKET
        # -- bracketing: absorb the trial, then decide --
        prev = _where(first, start, s["new"])
        new = trial
        ls_br = s["ls_iter"] + _pick(first, 0, 1)
        out = ls_br >= MAX_LS
        to_zoom_a = lacks_decrease(new) | ((ls_br > 1) & (new[1] >= prev[1]))
        curv = meets_curvature(new)
        to_zoom_c = new[3] >= 0
        br_single = ~out & ~to_zoom_a & curv
        br_zoom = out | to_zoom_a | (~curv & to_zoom_c)
        br_extrap = ~(br_single | br_zoom)
        br_A = _where(out, start, prev)
        t_extrap = cubic_min(prev[0], prev[1], prev[3], new[0], new[1], new[3],
                             new[0] + 0.01 * (new[0] - prev[0]), new[0] * 10.0)
        # -- zoom: absorb the trial into the bracket --
        A, B = s["A"], s["B"]
        low_is_a = A[1] <= B[1]
        lo, hi = _where(low_is_a, A, B), _where(low_is_a, B, A)
        ls_zm = s["ls_iter"] + 1
        worse = lacks_decrease(trial) | (trial[1] >= lo[1])
        z_done = ~worse & meets_curvature(trial)
        flip = ~worse & ~z_done & (trial[3] * (hi[0] - lo[0]) >= 0)
        new_hi = _where(worse, trial, _where(flip, lo, hi))
        new_lo = _where(worse, lo, trial)
        zA, zB = _where(low_is_a, new_lo, new_hi), _where(low_is_a, new_hi, new_lo)
        # -- merge the two phases --
        A = _where(in_bracket, _where(br_single, new, br_A), zA)
        B = _where(in_bracket, new, zB)
        ls_iter = ops.where(in_bracket, ls_br, ls_zm)
        single = in_bracket & br_single
        done = ops.where(in_bracket, br_single, z_done)
        zooming = ops.where(in_bracket, br_zoom, True)
        # -- zoom: the next trial (also right after bracketing ends) --
        t_lo, t_hi = _min(A[0], B[0]), _max(A[0], B[0])
        z_stop = done | (ls_iter >= MAX_LS) | (ops.abs(B[0] - A[0]) * d_norm < tolerance_change)
        t = cubic_min(A[0], A[1], A[3], B[0], B[1], B[3], t_lo, t_hi)
        eps = 0.1 * (t_hi - t_lo)
        close = _min(t_hi - t, t - t_lo) < eps
        move = close & (s["insuf"] | (t >= t_hi) | (t <= t_lo))
        t_moved = ops.where(ops.abs(t - t_hi) < ops.abs(t - t_lo), t_hi - eps, t_lo + eps)
        t_zoom = ops.where(move, t_moved, t)
        insuf_zoom = close & ~move
        keep_insuf = in_bracket & br_extrap
        phase = _pick(single | probe, _DONE, _pick(zooming & z_stop, _DONE,
                                                   _pick(zooming, _ZOOM, _BRACKET)))
        return {
            "phase": phase, "t_next": ops.where(zooming, t_zoom, t_extrap),
            "prev": prev, "new": new, "A": A, "B": B, "single": single, "ls_iter": ls_iter,
            "evals": s["evals"] + 1, "insuf": ops.where(keep_insuf, s["insuf"], insuf_zoom),
            "bad": bad, "done": done, "aux": aux_,
        }

    s = ops.while_loop(lambda s: s["phase"] != _DONE, body, state)
    A, B = s["A"], s["B"]
    accepted = _where(s["single"] | (A[1] <= B[1]), A, B)
    accepted = _where(skip, start, _where(probe, s["new"], accepted))
    return accepted, s["aux"], s["evals"], s["bad"]


def _iteration(cfg, evaluate, c):
    """One L-BFGS iteration of `lbfgs_core.LBFGS.step` on the carry `c`.

    While `c["fresh"]` (a chunk's start, loss and gradient not yet known) it
    only evaluates the objective at `x`, through the same line-search loop, and
    applies the step-start test (`max |g| <= tolerance_grad`).
    """
    x, f, g, st, fresh = c["x"], c["f"], c["g"], c["state"], c["fresh"]
    dtype = x.dtype
    n_iter = st["n_iter"] + 1
    first = n_iter == 1
    y, s = g - st["prev_g"], st["prev_s"]
    ys = _dot(y, s)
    add = st["has_prev"] & ~first & (ys > cfg.tolerance_ys)
    S = ops.where(add, ops.concatenate([st["S"][1:], s[None]], 0), st["S"])
    Y = ops.where(add, ops.concatenate([st["Y"][1:], y[None]], 0), st["Y"])
    safe_ys = ops.where(add, ys, ops.ones_like(ys))
    rho = ops.where(add, ops.concatenate([st["rho"][1:], (1.0 / safe_ys)[None]], 0), st["rho"])
    count = _pick(add, _min(st["count"] + 1, _i32(cfg.history_size)), st["count"])
    yy = _dot(y, y)
    h_diag = ops.where(add, safe_ys / ops.where(add, yy, ops.ones_like(yy)), st["h_diag"])
    d = ops.where(first | fresh, -g, two_loop(g, S, Y, rho, count, h_diag))
    d = ops.where(fresh, ops.zeros_like(d), d)
    f_prev = f
    lr = ops.convert_to_tensor(cfg.learning_rate, dtype)
    inv_g1 = 1.0 / ops.sum(ops.abs(g))
    t = ops.where(first, _min(ops.ones_like(inv_g1), inv_g1) * lr, lr)
    t = ops.where(fresh, ops.zeros_like(t), t)
    gtd = _dot(g, d)
    no_descent = ~fresh & (gtd > -cfg.tolerance_change)

    def phi(t_, aux):
        x_t = x + t_ * d
        f_t, g_t, aux = evaluate(x_t, aux)
        return (t_, f_t, g_t, ops.where(ops.isfinite(f_t), _dot(g_t, d), float("nan"))), aux

    failed = ops.convert_to_tensor(False)
    if cfg.line_search == "strong_wolfe":
        start = (ops.zeros((), dtype), f, g, gtd)
        (t, f_new, g_new, _), aux, ls_evals, bad = _strong_wolfe(
            phi, x, d, start, t, c["aux"], no_descent, fresh, cfg.tolerance_change)
        x_new = ops.where(t == 0, x, x + t * d)
    else:  # fixed step t
        (_, f_new, g_new, _), aux = phi(t, c["aux"])
        failed = ~fresh & ~no_descent & ~ops.isfinite(f_new)
        bad = failed
        ls_evals = _pick(no_descent, 0, 1)
        keep = no_descent | failed
        f_new, g_new = ops.where(keep, f, f_new), ops.where(keep, g, g_new)
        x_new = ops.where(keep | fresh, x, x + t * d)
        aux = _where(no_descent, c["aux"], aux)
    evals = c["evals"] + _pick(no_descent | fresh, 0, ls_evals)
    it = c["it"] + _pick(fresh, 0, 1)
    stop = (no_descent | failed | (it >= cfg.max_iter) | (evals >= cfg.max_eval)
            | (_max_abs(g_new) <= cfg.tolerance_grad)
            | (_max_abs(d * t) <= cfg.tolerance_change)
            | (ops.abs(f_new - f_prev) < cfg.tolerance_change))
    start_bad = fresh & ~ops.isfinite(f_new)
    stop = ops.where(fresh, start_bad | (_max_abs(g_new) <= cfg.tolerance_grad), stop)
    prev_s = ops.where(no_descent | failed, ops.zeros_like(x), x_new - x)
    state = {"S": S, "Y": Y, "rho": rho, "count": count, "h_diag": h_diag, "prev_g": g,
             "prev_s": prev_s, "has_prev": ops.convert_to_tensor(True), "n_iter": n_iter}
    state = _where(fresh, st, state)
    return {"x": x_new, "f": f_new, "g": g_new, "state": state, "aux": aux, "evals": evals,
            "it": it, "done": stop, "bad": c["bad"] | (bad & ~fresh),
            "fresh": ops.convert_to_tensor(False), "start_bad": c["start_bad"] | start_bad}


def run_steps(cfg, evaluate, x, state, aux, n_steps):
    """Up to `n_steps` (<= `cfg.capacity`) L-BFGS steps from `x`, as `LBFGS.step` called
    once per step with the loss and gradient evaluated at each step's start.

    The loss and gradient at `x` are evaluated once, at the start (a step's
    start inside the chunk is the previous step's accepted point, whose loss
    and gradient are known), through the line search's own call of `evaluate`,
    so the compiled program holds one copy of the objective. Returns `(x,
    state, aux, losses (capacity,), done, status)`: `losses[i]` is the loss at
    the end of step `i` (`done` steps completed); `status` 0 ran all steps, 1
    the loss or gradient at `x` is not finite (nothing ran), 2 step `done`
    found no finite point along its search direction and did not move
    (training should stop).
    """
    dtype = x.dtype
    zero_i = ops.convert_to_tensor(0, "int32")
    false = ops.convert_to_tensor(False)

    def one_step(c):
        x0, fresh = c["x"], c["fresh"]
        skip = ~fresh & (_max_abs(c["g"]) <= cfg.tolerance_grad)
        inner = {"x": x0, "f": c["f"], "g": c["g"], "state": c["state"], "aux": c["aux"],
                 "evals": ops.convert_to_tensor(1, "int32"), "it": zero_i, "done": skip,
                 "bad": false, "fresh": fresh, "start_bad": false}
        inner = ops.while_loop(lambda i: ~i["done"], lambda i: _iteration(cfg, evaluate, i),
                               inner)
        stuck = inner["bad"] & ops.all(inner["x"] == x0)
        counted = ~stuck & ~inner["start_bad"]
        index = ops.arange(cfg.capacity, dtype="int32") == c["step"]
        return {"x": inner["x"], "f": inner["f"], "g": inner["g"], "state": inner["state"],
                "aux": inner["aux"], "step": c["step"] + _pick(counted, 1, 0),
                "stuck": stuck, "start_bad": inner["start_bad"], "fresh": false,
                "losses": ops.where(index & counted, inner["f"], c["losses"])}

    carry = {"x": x, "f": ops.zeros((), dtype), "g": ops.zeros_like(x), "state": state,
             "aux": aux, "step": zero_i, "stuck": false, "start_bad": false,
             "fresh": ops.convert_to_tensor(True), "losses": ops.zeros((cfg.capacity,), dtype)}
    carry = ops.while_loop(
        lambda c: (c["step"] < n_steps) & ~c["stuck"] & ~c["start_bad"], one_step, carry)
    status = _pick(carry["start_bad"], 1, _pick(carry["stuck"], 2, 0))
    return carry["x"], carry["state"], carry["aux"], carry["losses"], carry["step"], status


class CompiledSteps:
    """Chunks of L-BFGS steps through the backend's compiled program, state kept as tensors.

    `fit_lbfgs` makes one per optimizer (a new one when the model's variables
    change, as it makes a new `lbfgs_core.LBFGS`).
    """

    def __init__(self, model, config, objective=None):
        import functools

        self.config = config
        self.program = kan_backend.lbfgs_program_fn(
            model, ("lbfgs", config.key()), functools.partial(run_steps, config), objective)
        self.n = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        self.state = initial_state(self.n, config.history_size, self.program.dtype)

    def forget_last_move(self):
        """As `LBFGS.forget_last_move`: no pair spans the jump to the next start."""
        self.state = dict(self.state, has_prev=ops.convert_to_tensor(False))

    def run(self, x0, n_steps, data):
        """Up to `n_steps` steps from `x0` (float64 NumPy, the variables' values).

        Returns `(x1 float64 NumPy, losses list of floats, status)`; status as in
        `run_steps` (1: not finite at `x0`; 2: the step after the losses did not move).
        """
        x, y, sample_weight = data
        flat, self.state, losses, done, status = self.program(
            x0.astype(self.program.dtype), self.state, int(n_steps), x, y, sample_weight)
        done = int(ops.convert_to_numpy(done))
        losses = np.asarray(ops.convert_to_numpy(losses), np.float64)[:done]
        x1 = np.asarray(ops.convert_to_numpy(flat), np.float64)
        return x1, [float(v) for v in losses], int(ops.convert_to_numpy(status))


#: The most steps one compiled call runs (the length of its loss output).
CHUNK = 50


def use_compiled(model, compiled, objective=None):
    """Whether `fit_lbfgs` runs `model` through `CompiledSteps` (`compiled`: its argument).

    The default (`compiled=None`) is the compiled program for `objective=` fits
    (physics-informed losses) on JAX and TensorFlow, and the host loop for data
    fits. Measured side by side (`benchmarks/lbfgs_speed.py --paths`, 2026-12-06):
    the Poisson protocol took 0.79-0.81x the host's time compiled, but the
    canonical data fit took 1.14-1.46x (its objective is cheap, and compiling
    the while-loop program costs more than the host loop it replaces).
    """
    if not model.trainable_variables:
        return False
    if compiled is not None:
        return bool(compiled)
    if objective is None:
        return False
    if kan_backend.BACKEND not in ("jax", "tensorflow") or model.run_eagerly:
        return False
    import keras

    return keras.distribution.distribution() is None


#: Callbacks that only need each step's logs, replayed after a chunk (by class name, so
#: the progress callbacks need not be imported here).
REPLAYABLE = ("History", "ProgbarLogger", "TerminateOnNaN")


def chunk_length(callbacks, remaining, capacity):
    """How many steps the next call may run before a callback needs the host.

    `callbacks` is the `CallbackList`. History, the progress bars and
    `keras_kan.progress` callbacks only read each step's logs, so they are
    replayed after the chunk; a `GridUpdate` ends the chunk before its next
    update; any other callback (EarlyStopping, ModelCheckpoint, Pruning, a
    user's) may stop training or read or change the weights after any step, so
    it gets one step per call.
    """
    length = min(int(remaining), int(capacity))
    for callback in getattr(callbacks, "callbacks", callbacks):
        name = type(callback).__name__
        if name in REPLAYABLE or type(callback).__module__.startswith("keras_kan.progress"):
            continue
        if name == "GridUpdate" and type(callback).__module__ == "keras_kan.callbacks":
            following = callback.next_update(callback.step)
            if following is not None:
                length = min(length, following - callback.step)
            continue
        return 1
    return max(length, 1)
