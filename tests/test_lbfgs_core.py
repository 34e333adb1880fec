"""keras_kan.lbfgs_core: the algorithm alone, on closed-form problems (no Keras)."""

import numpy as np

from keras_kan.lbfgs_core import LBFGS, cubic_min, two_loop


def test_cubic_min_is_exact_on_a_cubic():
    f = lambda t: (t - 0.3) ** 2 * (t + 2.0)  # noqa: E731  local minimum at t = 0.3
    df = lambda t: 2 * (t - 0.3) * (t + 2.0) + (t - 0.3) ** 2  # noqa: E731
    assert abs(cubic_min(0.0, f(0.0), df(0.0), 1.0, f(1.0), df(1.0)) - 0.3) < 1e-12


def test_two_loop_with_conjugate_pairs_inverts_a_quadratic():
    """n A-conjugate pairs (s_i' A s_j = 0) of a quadratic: BFGS's hereditary property
    makes H y_j = s_j for every pair, so H = A^-1 and -H g is the Newton step."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    hessian = a @ a.T + 4 * np.eye(4)
    memory = []
    for s in np.linalg.eigh(hessian)[1].T:  # orthogonal eigenvectors are A-conjugate
        y = hessian @ s
        memory.append((s, y, 1.0 / y.dot(s)))
    g = rng.normal(size=4)
    np.testing.assert_allclose(two_loop(g, memory, h_diag=1.0), -np.linalg.solve(hessian, g),
                               rtol=1e-10)


def test_minimizes_a_quadratic_to_its_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    hessian, b = a @ a.T + np.eye(6), rng.normal(size=6)

    def evaluate(x):
        return 0.5 * x @ hessian @ x - b @ x, hessian @ x - b

    evaluate.round = lambda x: x  # float64 variables: nothing to round
    opt = LBFGS(history_size=10, max_iter=50, max_eval=80, line_search="strong_wolfe",
                tolerance_grad=1e-12, tolerance_change=1e-15, learning_rate=1.0)
    x = np.zeros(6)
    f, g = evaluate(x)
    x, f, g = opt.step(evaluate, x, f, g)[:3]
    np.testing.assert_allclose(x, np.linalg.solve(hessian, b), rtol=1e-7, atol=1e-9)
