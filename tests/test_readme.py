"""The README's first example runs as printed, on every backend."""

import keras
import numpy as np
import pytest


@pytest.mark.slow
def test_first_example_runs_and_prunes_to_one_node(first_example):
    model, x_test, y_test = first_example["model"], first_example["x_test"], first_example["y_test"]
    assert "[2, 5, 1] -> [2, 1, 1]" in first_example["printed"]
    prediction = keras.ops.convert_to_numpy(model(x_test))
    assert np.sqrt(np.mean((prediction - y_test) ** 2)) < 5e-3
    reloaded = keras.saving.load_model(first_example["path"])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x_test)), prediction,
                               atol=1e-6)
