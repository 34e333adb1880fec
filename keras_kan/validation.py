"""Argument checks shared by every public function (Keras keeps these in
`utils/argument_validation.py`).

Each check returns the normalized value or raises a `ValueError` that names
the argument and the value received.
"""

import math

import numpy as np
from keras import ops

__all__ = [
    "check_int",
    "check_real",
    "check_bool",
    "check_grid_range",
    "check_samples",
    "check_finite",
    "even_rows",
]


def check_int(name, value, minimum, maximum=None):
    """`value` as an `int` in `[minimum, maximum]` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum or (
        maximum is not None and value > maximum
    ):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected an integer "
            f"{bound}, got {value!r}."
        )
    return int(value)


def check_real(name, value, minimum=None, maximum=None):
    """`value` as a finite `float` in `[minimum, maximum]` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        math.isfinite(float(value))
    ):
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a finite number, "
            f"got {value!r}."
        )
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bound = (f">= {minimum}" if maximum is None else f"<= {maximum}" if minimum is None
                 else f"in [{minimum}, {maximum}]")
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a number {bound}, "
            f"got {value!r}."
        )
    return float(value)


def check_bool(name, value):
    """`value` as a `bool`; only `True`/`False` (and NumPy bools) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected True or False, "
            f"got {value!r}."
        )
    return bool(value)


def check_one_of(name, value, choices):
    """`value`, which must be one of `choices` (a tuple of strings or None)."""
    if isinstance(value, (str, type(None))) and value in choices:
        return value
    raise ValueError(
        f"Received an invalid value for argument `{name}`: expected one of {choices}, "
        f"got {value!r}."
    )


def check_verbose(value, name="verbose"):
    """The library's one `verbose` convention: 0 (silent, every default outside the
    trainers) or 1 (print a summary); bools are accepted as 0/1."""
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return int(value)
    raise ValueError(
        f"Received an invalid value for argument `{name}`: expected 0 or 1, got {value!r}."
    )


def check_finite(name, value):
    """Raise unless every number in the array `value` is finite (non-float arrays pass)."""
    data = np.asarray(value)
    if np.issubdtype(data.dtype, np.inexact) and not np.all(np.isfinite(data)):
        bad = int(np.sum(~np.isfinite(data)))
        raise ValueError(
            f"Received an invalid value for argument `{name}`: it contains {bad} non-finite "
            "value(s) (NaN or inf)."
        )
    return value


def check_grid_range(grid_range, keywords=()):
    """`(low, high)` as two finite floats with `low < high`, or one of the strings `keywords`."""
    if isinstance(grid_range, str) and grid_range in keywords:
        return grid_range
    try:
        low, high = (float(v) for v in grid_range)
    except (TypeError, ValueError):
        raise ValueError(
            "Received an invalid value for argument `grid_range`: expected a pair "
            f"(low, high) of finite numbers{''.join(f' or {w!r}' for w in keywords)}, "
            f"got {grid_range!r}."
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(
            "Received an invalid value for argument `grid_range`: expected finite "
            f"low < high, got {grid_range!r}."
        )
    return (low, high)


def check_samples(name, x, features=None, min_samples=1, what="samples"):
    """A float64 NumPy copy of `x`, checked to be `(N, features)` and finite.

    Args:
        name: the argument's name, for the error message.
        x: array or tensor of shape `(N, features)` (leading axes are kept).
        features: the required size of the last axis (None: any).
        min_samples: the least `N` accepted.
        what: what the samples are for, for the error message.

    Returns:
        `(N, features)` float64 array.
    """
    try:
        data = np.asarray(ops.convert_to_numpy(x), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected a numeric array of "
            f"{what}, got {type(x).__name__} ({error})."
        ) from None
    if data.ndim < 2 or (features is not None and data.shape[-1] != features):
        expected = "(batch, features)" if features is None else f"(batch, ..., {features})"
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected {what} of shape "
            f"{expected}, got shape {data.shape}."
        )
    data = data.reshape(-1, data.shape[-1])
    if data.shape[0] < min_samples:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected at least "
            f"{min_samples} sample(s), got {data.shape[0]}."
        )
    if not np.all(np.isfinite(data)):
        bad = int(np.sum(~np.isfinite(data)))
        raise ValueError(
            f"Received an invalid value for argument `{name}`: it contains {bad} non-finite "
            "value(s) (NaN or inf)."
        )
    return data


def even_rows(count, keep):
    """Indices of `keep` rows evenly spaced over `count` (all of them if `count <= keep`).

    The first and last rows are always kept; indices are rounded to the nearest
    row. Used wherever samples are thinned (scores, plots, refits, symbolic fits).
    """
    if count <= keep:
        return np.arange(count)
    return np.round(np.linspace(0, count - 1, keep)).astype(int)
