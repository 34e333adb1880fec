"""The L-BFGS algorithm of `torch.optim.LBFGS` (as pykan uses it), in float64 NumPy.

Two-loop recursion and a strong-Wolfe line search with safeguarded cubic
interpolation; `keras_kan.lbfgs.fit_lbfgs` drives it. Nothing here knows
about Keras: the objective is any `evaluate(x) -> (f, g)` on flat vectors.

Deliberate differences from torch: a trial point whose loss or gradient is not
finite fails the sufficient-decrease test (torch continues with NaN); a
curvature pair is only formed from a step actually taken; the fixed-step mode
(`line_search=None`) always evaluates the new point; a pair enters the history
when `y.s > tolerance_ys` (pykan's own copy passes 1e-32, torch hard-codes
1e-10).
"""

import math

import numpy as np

__all__ = ["LBFGS", "strong_wolfe", "two_loop", "cubic_min", "Trial", "C1", "C2", "MAX_LS",
           "LS_TOLERANCE"]

C1, C2, MAX_LS = 1e-4, 0.9, 25  # torch's strong-Wolfe constants
LS_TOLERANCE = 1e-9  # torch's (and pykan's) line-search interval tolerance


def cubic_min(t1, f1, g1, t2, f2, g2, lo=None, hi=None):
    """Minimizer in [lo, hi] of the cubic through (t1, f1, f'=g1), (t2, f2, f'=g2).

    Nocedal & Wright (3.59); the midpoint of the interval when the cubic has no
    real minimizer or a value is not finite.
    """
    if lo is None:
        lo, hi = min(t1, t2), max(t1, t2)
    if not all(map(math.isfinite, (t1, f1, g1, t2, f2, g2))) or t1 == t2:
        return 0.5 * (lo + hi)
    a = g1 + g2 - 3.0 * (f1 - f2) / (t1 - t2)
    disc = a * a - g1 * g2
    if disc < 0:
        return 0.5 * (lo + hi)
    b = math.copysign(math.sqrt(disc), t2 - t1)  # sign(t2 - t1) * sqrt(disc)
    denom = g2 - g1 + 2.0 * b
    if denom == 0:
        return 0.5 * (lo + hi)
    t = t2 - (t2 - t1) * (g2 + b - a) / denom
    return min(max(t, lo), hi) if math.isfinite(t) else 0.5 * (lo + hi)


class Trial:
    """A point on the search line: step t, loss f, gradient g, slope g.d."""

    __slots__ = ("t", "f", "g", "gtd")

    def __init__(self, t, f, g, gtd):
        self.t, self.f, self.g, self.gtd = t, f, g, gtd


def strong_wolfe(phi, start, t, d, tolerance_change=LS_TOLERANCE):
    """Strong-Wolfe line search along d from `start` (a `_Trial` at t=0).

    `phi(t)` evaluates a trial. Bracketing by extrapolation, then zoom by
    safeguarded cubic interpolation (torch.optim.LBFGS's scheme). A trial whose
    loss or gradient is not finite counts as a failed sufficient-decrease test,
    so the search backs off towards the last finite point (torch would carry on
    with NaN). Returns (accepted trial, evaluations, saw_non_finite).
    """
    f0, gtd0 = start.f, start.gtd
    d_norm = float(np.max(np.abs(d))) if d.size else 0.0

    def lacks_decrease(trial):
        """The Armijo (sufficient-decrease) test fails; also for a NaN or inf loss."""
        return not trial.f <= f0 + C1 * trial.t * gtd0

    def meets_curvature(trial):
        """The strong-Wolfe curvature test passes."""
        return abs(trial.gtd) <= -C2 * gtd0

    new, prev = phi(t), start
    evals, ls_iter, bracket, done = 1, 0, None, False
    while ls_iter < MAX_LS:
        if lacks_decrease(new) or (ls_iter > 1 and new.f >= prev.f):
            bracket = [prev, new]
            break
        if meets_curvature(new):
            bracket, done = [new], True
            break
        if new.gtd >= 0:
            bracket = [prev, new]
            break
        t = cubic_min(prev.t, prev.f, prev.gtd, new.t, new.f, new.gtd,
                       new.t + 0.01 * (new.t - prev.t), new.t * 10.0)
        prev, new = new, phi(t)
        evals += 1
        ls_iter += 1
    if bracket is None:  # out of budget while extrapolating
        bracket = [start, new]
    saw_non_finite = not math.isfinite(new.f)

    insufficient_progress = False
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    while not done and ls_iter < MAX_LS and len(bracket) == 2:
        a, b = bracket
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        t = cubic_min(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        t_lo, t_hi = min(a.t, b.t), max(a.t, b.t)
        eps = 0.1 * (t_hi - t_lo)
        if min(t_hi - t, t - t_lo) < eps:  # too close to an end: move inside
            if insufficient_progress or t >= t_hi or t <= t_lo:
                t = t_hi - eps if abs(t - t_hi) < abs(t - t_lo) else t_lo + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        new = phi(t)
        evals += 1
        ls_iter += 1
        saw_non_finite |= not math.isfinite(new.f)
        if lacks_decrease(new) or new.f >= bracket[low].f:
            bracket[high] = new
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if meets_curvature(new):
                done = True
            elif new.gtd * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = new
    return bracket[low if len(bracket) == 2 else 0], evals, saw_non_finite


def two_loop(g, memory, h_diag):
    """-H g for the L-BFGS inverse-Hessian approximation H (pairs (s, y, 1/y.s))."""
    q = -g
    alphas = []
    for s, y, rho in reversed(memory):
        alpha = rho * s.dot(q)
        q -= alpha * y
        alphas.append(alpha)
    r = q * h_diag
    for (s, y, rho), alpha in zip(memory, reversed(alphas)):
        r += s * (alpha - rho * y.dot(r))
    return r


class LBFGS:
    """torch.optim.LBFGS's algorithm; its state persists across `step` calls."""

    def __init__(self, history_size, max_iter, max_eval, line_search, tolerance_grad,
                 tolerance_change, learning_rate, tolerance_ys=1e-32):
        self.history_size, self.max_iter, self.max_eval = history_size, max_iter, max_eval
        self.line_search, self.lr = line_search, learning_rate
        self.tolerance_grad, self.tolerance_change = tolerance_grad, tolerance_change
        self.tolerance_ys = tolerance_ys
        self.n_iter = 0  # iterations over all steps (the very first one is scaled)
        self.memory, self.h_diag = [], 1.0
        self.prev_g = self.prev_s = None

    def forget_last_move(self):
        """Drop the pending pair: the next iteration adds no `(s, y)` to the memory."""
        self.prev_g = self.prev_s = None

    def step(self, evaluate, x, f, g):
        """Up to `max_iter` iterations from x (loss f, gradient g already evaluated).

        `evaluate(x) -> (f, g)` is the loss and gradient at x, with f = inf
        when either is not finite; `evaluate.round(x)` rounds x to the
        variables' precision (trial points are rounded, so the accepted point
        is exactly what the model can hold).
        Returns (x, f, g, evaluations, saw_non_finite) at the accepted point.
        """
        evals, saw_non_finite = 1, False
        if np.max(np.abs(g), initial=0.0) <= self.tolerance_grad:
            return x, f, g, evals, saw_non_finite
        for n_iter in range(1, self.max_iter + 1):
            self.n_iter += 1
            if self.n_iter == 1:
                d = -g
            elif self.prev_g is None:  # after forget_last_move
                d = two_loop(g, self.memory, self.h_diag)
            else:
                y, s = g - self.prev_g, self.prev_s
                ys = y.dot(s)
                if ys > self.tolerance_ys:
                    if len(self.memory) == self.history_size:
                        self.memory.pop(0)
                    self.memory.append((s, y, 1.0 / ys))
                    self.h_diag = ys / y.dot(y)
                d = two_loop(g, self.memory, self.h_diag)
            self.prev_g, self.prev_s = g, np.zeros_like(g)
            f_prev = f
            if self.n_iter == 1:
                t = min(1.0, 1.0 / np.sum(np.abs(g))) * self.lr
            else:
                t = self.lr
            gtd = g.dot(d)
            if gtd > -self.tolerance_change:
                break
            if self.line_search == "strong_wolfe":
                trials = {}

                def phi(t_, x=x, d=d, trials=trials):
                    x_t = evaluate.round(x + t_ * d)
                    f_t, g_t = evaluate(x_t)
                    trials[t_] = x_t
                    return Trial(t_, f_t, g_t, g_t.dot(d) if math.isfinite(f_t) else math.nan)

                accepted, ls_evals, bad = strong_wolfe(phi, Trial(0.0, f, g, gtd), t, d)
                saw_non_finite |= bad
                t, f, g = accepted.t, accepted.f, accepted.g
                x_new = trials.get(t, x)
            else:  # fixed step t (torch's line_search_fn=None)
                x_new = evaluate.round(x + t * d)
                f_new, g_new = evaluate(x_new)
                if not math.isfinite(f_new):
                    return x, f_prev, self.prev_g, evals + 1, True
                f, g, ls_evals = f_new, g_new, 1
            self.prev_s = x_new - x
            x = x_new
            evals += ls_evals
            if n_iter == self.max_iter or evals >= self.max_eval:
                break
            if np.max(np.abs(g), initial=0.0) <= self.tolerance_grad:
                break
            if np.max(np.abs(d * t), initial=0.0) <= self.tolerance_change:
                break
            if abs(f - f_prev) < self.tolerance_change:
                break
        return x, f, g, evals, saw_non_finite
