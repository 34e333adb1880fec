"""The README's first example runs as printed, on every backend."""

import os
import re

import keras
import numpy as np
import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


@pytest.mark.slow
def test_first_example_runs_and_prunes_to_one_node(tmp_path, capsys):
    text = open(README, encoding="utf-8").read()
    block = re.search(r"## A first KAN\n\n```python\n(.*?)```", text, re.S).group(1)
    path = str(tmp_path / "kan.keras")
    namespace = {}
    exec(compile(block.replace('"kan.keras"', repr(path)), "README.md", "exec"), namespace)
    model, x_test, y_test = namespace["model"], namespace["x_test"], namespace["y_test"]
    assert "[2, 5, 1] -> [2, 1, 1]" in capsys.readouterr().out
    prediction = keras.ops.convert_to_numpy(model(x_test))
    assert np.sqrt(np.mean((prediction - y_test) ** 2)) < 5e-3
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x_test)), prediction,
                               atol=1e-6)
