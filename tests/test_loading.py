"""Strict loading's refusal (keras_kan.loading): the shapes it checks and the fix it names.

The shapes are checked against a built layer's own variables; the messages against
real loads: `load_weights` of another architecture, and KerasTuner's reload of a
trial whose `fit` refined the model without recording it.
"""

import keras
import numpy as np
import pytest

from keras_kan import KAN, KANDense, loading, refine, symbolic_edges

TUNER_FIX = ("keras_kan.tuner.record_architecture", "accept_recorded_architectures",
             "docs/guide.md#kerastuner")


@pytest.mark.parametrize("n, grid_size, units, spline_order, use_bias",
                         [(2, 5, 3, 3, False), (4, 1, 1, 1, True), (3, 7, 2, 2, True)])
def test_weight_shapes_are_the_built_layers(n, grid_size, units, spline_order, use_bias):
    layer = KANDense(units, grid_size=grid_size, spline_order=spline_order,
                     use_bias=use_bias)
    layer.build((None, n))
    variables = {v.path.split("/")[-1]: tuple(v.shape) for v in layer.weights}
    shapes = loading.weight_shapes(n, grid_size, units, spline_order, use_bias)
    assert shapes == {name: variables[name] for name in shapes}
    assert set(variables) - set(shapes) <= set(symbolic_edges.SYMBOLIC_WEIGHT_NAMES)
    assert loading.stored_architecture(shapes, spline_order, use_bias) == (n, grid_size, units)
    # Another spline order or bias: not this layer's kind.
    assert loading.stored_architecture(shapes, spline_order + 1, use_bias) is None
    assert loading.stored_architecture(shapes, spline_order, not use_bias) is None


def _refusal(saved, other, tmp_path):
    path = str(tmp_path / "m.weights.h5")
    saved.save_weights(path)
    with pytest.raises(ValueError) as error:
        other.load_weights(path)
    return str(error.value)


def test_weights_of_another_grid_or_width_name_the_tuner_fix(tmp_path):
    """Shapes that differ only by grid size or units are what refine / prune make, in a
    KerasTuner trial above all: the refusal names both fixes."""
    for other in (KAN([2, 3, 1], grid_size=8, seed=1), KAN([2, 4, 1], grid_size=5, seed=1)):
        message = _refusal(KAN([2, 3, 1], grid_size=5, seed=0), other, tmp_path)
        assert "kan_dense_0" in message and "grid_size=5 and units=3" in message, message
        assert "keras.saving.load_model" in message
        for part in TUNER_FIX:
            assert part in message, (part, message)
        assert "KerasTuner's reload" not in message  # not made by KerasTuner


def test_weights_of_another_kind_name_load_model_only(tmp_path):
    """Another spline order is another model, not a recorded change."""
    message = _refusal(KAN([2, 3, 1], grid_size=5, spline_order=2, seed=0),
                       KAN([2, 3, 1], grid_size=5, seed=1), tmp_path)
    assert "spline_order=3" in message and "keras.saving.load_model" in message
    for part in TUNER_FIX:
        assert part not in message, (part, message)


@pytest.mark.slow
def test_kerastuner_reload_of_an_unrecorded_refine_names_the_tuner_fix(tmp_path):
    """A user's HyperModel refines in `fit` and records nothing: `get_best_models`
    (KerasTuner's reload of the checkpoint into the model `build` makes) is refused,
    and the refusal says what to call, where."""
    keras_tuner = pytest.importorskip("keras_tuner")

    class RefiningHyperModel(keras_tuner.HyperModel):
        def build(self, hp):
            model = KAN([2, 3, 1], grid_size=hp.Fixed("grid", 3), seed=0)
            model.compile("adam", "mse")
            return model

        def fit(self, hp, model, x, y, **kwargs):
            return refine(model, grid_size=6).fit(x, y, **kwargs)

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (32, 2)).astype("float32")
    y = np.sin(x[:, :1]).astype("float32")
    tuner = keras_tuner.RandomSearch(RefiningHyperModel(), objective="loss", max_trials=1,
                                     directory=str(tmp_path), project_name="refine")
    tuner.search(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError) as error:
        tuner.get_best_models(1)
    message = str(error.value)
    assert "kan_dense_0" in message and "KerasTuner's reload" in message, message
    for part in TUNER_FIX:
        assert part in message, (part, message)
    # The fix it names works: record in fit, accept in build.
    from keras_kan.tuner import accept_recorded_architectures, record_architecture

    class RecordingHyperModel(RefiningHyperModel):
        def build(self, hp):
            return accept_recorded_architectures(hp, super().build(hp))

        def fit(self, hp, model, x, y, **kwargs):
            model = refine(model, grid_size=6)
            record_architecture(hp, model)
            return model.fit(x, y, **kwargs)

    tuner = keras_tuner.RandomSearch(RecordingHyperModel(), objective="loss", max_trials=1,
                                     directory=str(tmp_path), project_name="recorded")
    tuner.search(x, y, epochs=1, verbose=0)
    best = tuner.get_best_models(1)[0]
    assert [layer.grid_size for layer in best.layers] == [6, 6]
    assert keras.ops.convert_to_numpy(best(x)).shape == (32, 1)
