"""Synthetic regression data for KAN experiments (no downloads)."""

import numpy as np

from keras_kan.rng import torch_rand
from keras_kan.validation import check_int, check_real

__all__ = ["create_dataset", "FUNCTIONS"]

#: A few of the KAN paper's test functions, on inputs of shape `(N, n_var)`.
FUNCTIONS = {
    # The canonical quickstart target, on [0, 1]^2.
    "exp_cos_sq": lambda x: np.exp(np.cos(np.pi * x[:, 0]) + x[:, 1] ** 2),
    # The paper's grid-extension target, on [-1, 1]^2.
    "exp_sin_sq": lambda x: np.exp(np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2),
    "xy": lambda x: x[:, 0] * x[:, 1],
    "bessel_like": lambda x: np.sin(np.pi * x[:, 0]) * np.cos(np.pi * x[:, 1]),
}


def create_dataset(f, n_var=2, n_samples=1000, ranges=(-1.0, 1.0), seed=0,
                   test_split=0.2, dtype="float32"):
    """Sample `f` on uniform random inputs and split into train and test sets.

    Args:
        f: callable `(N, n_var) float64 array -> (N,) or (N, n_out)`, or a
            key of `FUNCTIONS`.
        n_var: number of input variables.
        n_samples: total number of points.
        ranges: one `(low, high)` for every variable, or a list of `n_var`
            pairs.
        seed: the points are those of pykan's `create_dataset(..., seed=seed,
            train_num, test_num)` (same random stream, see
            `keras_kan.rng`), on every backend.
        test_split: fraction of the points held out for testing.
        dtype: NumPy dtype of the returned arrays.

    Returns:
        `(x_train, y_train), (x_test, y_test)` with `x` of shape
        `(N, n_var)` and `y` of shape `(N, n_out)`.
    """
    if isinstance(f, str):
        if f not in FUNCTIONS:
            raise ValueError(f"Unknown function {f!r}; known: {sorted(FUNCTIONS)}.")
        f = FUNCTIONS[f]
    if not callable(f):
        raise ValueError(f"Received an invalid value for argument `f`: expected a callable, "
                         f"got {f!r}.")
    n_var = check_int("n_var", n_var, 1)
    n_samples = check_int("n_samples", n_samples, 2)
    if not 0.0 < check_real("test_split", test_split) < 1.0:
        raise ValueError(f"Received an invalid value for argument `test_split`: expected a "
                         f"fraction in (0, 1), got {test_split!r}.")
    ranges = np.asarray(ranges, dtype=np.float64)
    if ranges.shape == (2,):
        ranges = np.tile(ranges, (n_var, 1))
    if ranges.shape != (n_var, 2) or not np.all(ranges[:, 0] < ranges[:, 1]):
        raise ValueError(f"Received an invalid value for argument `ranges`: expected (low, "
                         f"high) or {n_var} such pairs with low < high, got {ranges.tolist()}.")
    n_test = max(1, int(round(test_split * n_samples)))
    n_train = int(n_samples) - n_test
    # pykan's order: for each variable, its train column, then its test column.
    columns = torch_rand(seed, *[(n_train,), (n_test,)] * n_var)
    low, width = ranges[:, 0], ranges[:, 1] - ranges[:, 0]
    x_train = np.stack(columns[0::2], axis=1) * width + low
    x_test = np.stack(columns[1::2], axis=1) * width + low
    x = np.concatenate([x_train, x_test]).astype(np.float32).astype(np.float64)
    y = np.asarray(f(x), dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"`f` returned {y.shape[0]} values for {x.shape[0]} points.")
    x, y = x.astype(dtype), y.astype(dtype)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
