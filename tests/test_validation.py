"""keras_kan.validation: every check names the argument and the value it refused."""

import numpy as np
import pytest

from keras_kan.validation import (
    check_bool,
    check_grid_range,
    check_int,
    check_real,
    check_samples,
    check_verbose,
)


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3", None])
def test_check_int_refuses(value):
    with pytest.raises(ValueError, match=r"argument `grid_size`: expected an integer >= 1"):
        check_int("grid_size", value, 1)


def test_check_int_accepts_numpy_integers():
    assert check_int("n", np.int64(4), 1) == 4 and type(check_int("n", np.int64(4), 1)) is int


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, True, "0.1"])
def test_check_real_refuses(value):
    with pytest.raises(ValueError, match=r"argument `l1`"):
        check_real("l1", value, 0.0)


def test_check_bool_and_verbose():
    assert check_bool("use_bias", np.bool_(True)) is True
    with pytest.raises(ValueError, match="expected True or False, got 'yes'"):
        check_bool("use_bias", "yes")
    assert [check_verbose(v) for v in (0, 1, False, True)] == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="argument `verbose`: expected 0 or 1, got 2"):
        check_verbose(2)


def test_check_grid_range():
    assert tuple(check_grid_range((-2, 3))) == (-2.0, 3.0)
    for bad in [(1, 1), (2, -2), (0, float("inf")), "ab", (0, 1, 2)]:
        with pytest.raises((ValueError, TypeError), match="grid_range"):
            check_grid_range(bad)


@pytest.mark.slow
def test_check_samples_counts_non_finite_values():
    x = np.zeros((5, 2))
    x[1, 0], x[3, 1] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"it contains 2 non-finite value\(s\)"):
        check_samples("x", x)
    with pytest.raises(ValueError, match="expected at least 3 sample"):
        check_samples("x", np.zeros((2, 2)), min_samples=3)
