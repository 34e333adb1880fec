"""keras_kan.models: KAN(width) and ObjectiveModel."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_kan import KAN, KANDense, ObjectiveModel


def test_kan_is_a_sequential_of_kandense():
    model = KAN([3, 4, 2], grid_size=7, spline_order=2, seed=0, name="net")
    assert isinstance(model, keras.Sequential) and model.name == "net"
    assert [type(layer) for layer in model.layers] == [KANDense, KANDense]
    assert [layer.units for layer in model.layers] == [4, 2]
    assert {layer.grid_size for layer in model.layers} == {7}
    assert model.layers[0].input_dim == 3 and model.built


@pytest.mark.parametrize("width", [[2], "21", [2, [3, 1, 1], 1], [2, 0, 1]])
def test_kan_refuses_bad_widths(width):
    with pytest.raises(ValueError, match="width"):
        KAN(width)


@pytest.mark.slow
def test_objective_model_minimizes_the_objective_with_a_keras_optimizer():
    """A least-squares objective written without x/y: fit drives it down to the data's."""
    base = KAN([1, 1], grid_size=5, seed=0)
    x = np.linspace(-1, 1, 64, dtype="float32")[:, None]
    target = keras.ops.convert_to_tensor(np.sin(2 * x))

    def objective(model):
        return keras.ops.mean((model(x) - target) ** 2)

    trainer = ObjectiveModel(base, objective)
    trainer.compile(optimizer=keras.optimizers.Adam(0.05))
    before = float(to_numpy(objective(base)))
    history = trainer.fit(epochs=60, verbose=0)
    after = float(to_numpy(objective(base)))
    assert after < 0.1 * before
    np.testing.assert_allclose(history.history["loss"][-1], after, rtol=0.2)


def test_objective_model_refuses_bad_arguments():
    with pytest.raises(ValueError, match="built keras.Model"):
        ObjectiveModel("model", lambda m: 0.0)
    with pytest.raises(TypeError, match="callable"):
        ObjectiveModel(KAN([1, 1], seed=0), objective=3)
