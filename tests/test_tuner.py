"""KerasTuner searches over KANs: HyperKAN's space, real searches, reloads of refined or
pruned trials."""

import gc
import importlib
import os
import re
import subprocess
import sys
from typing import ClassVar

import keras
import numpy as np
import pytest

keras_tuner = pytest.importorskip("keras_tuner")

from conftest import BACKEND, to_numpy  # noqa: E402

from keras_kan import KANDense, KANRegularizer, prune  # noqa: E402
from keras_kan.tuner import (  # noqa: E402
    HyperKAN,
    accept_recorded_architectures,
    record_architecture,
)

RNG = np.random.default_rng(0)
X = RNG.uniform(-1, 1, (64, 3)).astype("float32")
Y = (np.sin(np.pi * X[:, :1]) + X[:, 1:2] ** 2).astype("float32")  # x2 is irrelevant
X_VAL = RNG.uniform(-1, 1, (32, 3)).astype("float32")
Y_VAL = (np.sin(np.pi * X_VAL[:, :1]) + X_VAL[:, 1:2] ** 2).astype("float32")
PROBE = RNG.uniform(-1.2, 1.2, (16, 3)).astype("float32")


class Recorder(keras.callbacks.Callback):
    """Records (val_loss, the model's class, config and weights) after every epoch.

    The list is a class attribute: KerasTuner deep-copies the callbacks given to
    `search`, and the copies must write to the same place.
    """

    records: ClassVar[list] = []

    def on_epoch_end(self, epoch, logs=None):
        Recorder.records.append((logs["val_loss"], type(self.model), self.model.get_config(),
                                 self.model.get_weights()))


@pytest.fixture(autouse=True, scope="module")
def _freeze_earlier_objects():
    """KerasTuner runs `gc.collect()` twice before each trial (`clear_session` and its
    `_try_build`). A full collection walks every object alive in the process, late in
    the suite all that earlier modules left: 1-2 s a call, ~70 s of the TensorFlow run
    (cProfile). Objects alive when this module starts are frozen (`gc.freeze`, ignored
    by the collector) and handed back when it ends. Only here: freezing for every
    module measured slower (the collector then runs full passes more often)."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _clear_records():
    Recorder.records = []


def kan_shapes(model):
    return [(layer.units, layer.grid_size) for layer in model.layers
            if isinstance(layer, KANDense)]


def trained_model(tuner):
    """The best trial's model at its best epoch, as it was trained (rebuilt from a record)."""
    score = tuner.oracle.get_best_trials(1)[0].score
    matches = [r for r in Recorder.records if r[0] == score]
    assert matches, (score, [r[0] for r in Recorder.records])
    _, cls, config, weights = matches[0]
    model = cls.from_config(config)
    model.set_weights(weights)
    return model


def assert_best_model_is_the_trained_one(tuner, tmp_path):
    trained = trained_model(tuner)
    expected = to_numpy(trained(PROBE))
    best = tuner.get_best_models(1)[0]
    assert kan_shapes(best) == kan_shapes(trained)
    np.testing.assert_allclose(to_numpy(best(PROBE)), expected, rtol=1e-6, atol=1e-6)
    path = str(tmp_path / "best.keras")
    best.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(again(PROBE)), expected, rtol=1e-6, atol=1e-6)
    return best


def search(tuner, epochs=2, **kwargs):
    tuner.search(X, Y, epochs=epochs, validation_data=(X_VAL, Y_VAL), callbacks=[Recorder()],
                 verbose=0, **kwargs)


# ------------------------------------------------------------------- the space
def full_space(hypermodel):
    """The hyperparameters of `hypermodel`, every conditional one registered."""
    hp = keras_tuner.HyperParameters()
    hp.values["depth"] = 3  # so that units_0..units_2 are registered
    hypermodel.build(hp)
    return hp


def sample(space, seed):
    """Random values for every hyperparameter of `space` (conditions kept)."""
    hp = space.copy()
    rng = np.random.default_rng(seed)
    for param in hp.space:
        hp.values[param.name] = param.random_sample(int(rng.integers(2**31)))
    return hp


@pytest.mark.slow
def test_random_hyperparameters_build_valid_compiled_models():
    hypermodel = HyperKAN((3,), 2, seed=0)
    seen = {"depth": set(), "grid_size": set(), "spline_order": set(), "optimizer": set(),
            "regularized": set()}
    space = full_space(hypermodel)
    for seed in range(12):
        hp = sample(space, seed)
        model = hypermodel.build(hp)
        v = hp.values
        assert model.built and model.compiled
        kans = [layer for layer in model.layers if isinstance(layer, KANDense)]
        assert len(kans) == v["depth"] + 1
        assert [layer.units for layer in kans] == [v[f"units_{i}"] for i in
                                                    range(v["depth"])] + [2]
        assert {layer.grid_size for layer in kans} == {v["grid_size"]}
        assert {layer.spline_order for layer in kans} == {v["spline_order"]}
        regularizer = kans[0].regularizer
        if v["l1"] == 0 and v["entropy"] == 0:
            assert regularizer is None
        else:
            assert isinstance(regularizer, KANRegularizer)
            assert (regularizer.l1, regularizer.entropy) == (v["l1"], v["entropy"])
        if v["optimizer"] == "lbfgs":
            assert not hp.is_active("learning_rate")
        else:
            assert isinstance(model.optimizer, keras.optimizers.Adam)
            np.testing.assert_allclose(float(model.optimizer.learning_rate),
                                       v["learning_rate"], rtol=1e-6)
        assert model.loss == "mse"
        assert model.output_shape == (None, 2)
        if seed < 2:
            assert model(X[:4]).shape == (4, 2)
        for key in ("depth", "grid_size", "spline_order", "optimizer"):
            seen[key].add(v[key])
        seen["regularized"].add(regularizer is not None)
    assert seen == {"depth": {1, 2, 3}, "grid_size": {3, 5, 10}, "spline_order": {1, 2, 3},
                    "optimizer": {"adam", "lbfgs"}, "regularized": {False, True}}


@pytest.mark.slow
def test_fixed_and_narrowed_arguments_are_honoured():
    hypermodel = HyperKAN(3, classes=3, depth=2, hidden_units=[4, 6], grid_size=7,
                          spline_order=2, l1=[0.0, 1e-3], entropy=0.0, optimizer="lbfgs",
                          seed=1)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    space = {p.name: p for p in hp.space}
    assert sorted(space) == ["depth", "entropy", "grid_size", "l1", "optimizer",
                             "spline_order", "units_0", "units_1"]
    for name, value in (("depth", 2), ("grid_size", 7), ("spline_order", 2),
                        ("entropy", 0.0), ("optimizer", "lbfgs")):
        assert isinstance(space[name], keras_tuner.engine.hyperparameters.Fixed), name
        assert space[name].value == value
    assert list(space["units_0"].values) == [4, 6]
    assert list(space["l1"].values) == [0.0, 1e-3]
    assert model.loss == "sparse_categorical_crossentropy"
    probs = to_numpy(model(X[:5]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert [layer.units for layer in model.layers if isinstance(layer, KANDense)] == [4, 4, 3]

    narrowed = HyperKAN((3,), 1, optimizer=["sgd", "adam"], learning_rate=[0.01, 0.05],
                        grid_schedule=[2, 4])
    hp = keras_tuner.HyperParameters()
    narrowed.build(hp)
    space = {p.name: p for p in hp.space}
    assert list(space["optimizer"].values) == ["sgd", "adam"]
    assert list(space["learning_rate"].values) == [0.01, 0.05]
    assert space["grid_size"].value == 2


@pytest.mark.parametrize("kwargs, argument", [
    ({"input_shape": (3, 2), "output_units": 1}, "input_shape"),
    ({"input_shape": (3,)}, "output_units"),
    ({"input_shape": (3,), "output_units": 1, "depth": -1}, "depth"),
    ({"input_shape": (3,), "output_units": 1, "hidden_units": []}, "hidden_units"),
    ({"input_shape": (3,), "output_units": 1, "optimizer": "no_such"}, "optimizer"),
    ({"input_shape": (3,), "output_units": 1, "l1": -1.0}, "l1"),
    ({"input_shape": (3,), "output_units": 1, "grid_schedule": [5, 3]}, "grid_schedule"),
    ({"input_shape": (3,), "output_units": 1, "grid_schedule": [3, 5], "grid_size": 3},
     "grid_size"),
    ({"input_shape": (3,), "classes": 1}, "classes"),
])
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        HyperKAN(**kwargs)


def test_tuner_without_keras_tuner_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_tuner", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "keras_kan.tuner")
    with pytest.raises(ImportError, match=re.escape("pip install keras-kan[tuner]")):
        importlib.import_module("keras_kan.tuner")


@pytest.mark.skipif(BACKEND != "jax", reason="backend-independent import check (a new "
                    "interpreter costs ~10 s here): run once, on JAX")
@pytest.mark.slow
def test_keras_kan_imports_without_keras_tuner():
    code = (
        "import sys; sys.modules['keras_tuner'] = None\n"
        "import keras_kan\n"
        "try:\n"
        "    keras_kan.tuner\n"
        "except ImportError as e:\n"
        "    print('ERROR', e)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ERROR" in out.stdout and "pip install keras-kan[tuner]" in out.stdout, out.stdout


# ------------------------------------------------------------------- searches
# What differs between backends is building, training, saving and reloading a trial's
# model; every search below does all four. The oracle's own bookkeeping (a plain build
# function, Bayesian optimization, executions per trial) is the same on every backend,
# so those searches run once, on PyTorch, where a trial costs least (no tracing).
oracle_only = pytest.mark.skipif(
    BACKEND != "torch", reason="the oracle's bookkeeping is backend-independent: run once, "
    "on PyTorch (the searches that build, save and reload models run on every backend)")


@oracle_only
@pytest.mark.slow
def test_random_search_with_a_plain_build_function(tmp_path):
    def build(hp):
        model = keras.Sequential([
            keras.Input((3,)),
            KANDense(hp.Int("units", 2, 4), grid_size=hp.Choice("grid", [3, 5])),
            KANDense(1),
        ])
        model.compile(keras.optimizers.Adam(0.05), "mse")
        return model

    tuner = keras_tuner.RandomSearch(build, objective="val_loss", max_trials=2, seed=1,
                                     directory=str(tmp_path), project_name="plain")
    search(tuner)
    assert len(tuner.oracle.trials) == 2
    assert_best_model_is_the_trained_one(tuner, tmp_path)


@pytest.mark.slow
def test_random_search_with_hyperkan_reloads_refined_trials(tmp_path):
    """HyperKAN's space (width, Adam or L-BFGS, the L1 penalty) with a grid schedule:
    each trial is built on grid 3 and trained on to grid 6, and its checkpoint
    reloads, also in a fresh tuner from disk."""
    hypermodel = HyperKAN((3,), 1, depth=1, hidden_units=[3, 4], grid_schedule=[3, 6],
                          spline_order=3, optimizer=["adam", "lbfgs"], learning_rate=0.05,
                          l1=1e-3, entropy=0.0, lbfgs_options={"max_iter": 5})

    def make(overwrite):
        return keras_tuner.RandomSearch(hypermodel, objective="val_loss", max_trials=2, seed=0,
                                        directory=str(tmp_path), project_name="refine",
                                        overwrite=overwrite)

    tuner = make(True)
    search(tuner)  # one epoch per stage
    assert len(tuner.oracle.trials) == 2
    best = assert_best_model_is_the_trained_one(tuner, tmp_path)
    values = tuner.get_best_hyperparameters(1)[0].values
    assert values["grid_size"] == 3
    shapes = [(values["units_0"], 6), (1, 6)]  # built on grid 3, trained on to grid 6
    assert kan_shapes(best) == shapes
    regularizers = [layer.regularizer for layer in best.layers if isinstance(layer, KANDense)]
    assert all(isinstance(r, KANRegularizer) and r.l1 == 1e-3 for r in regularizers)
    expected = to_numpy(best(PROBE))

    fresh = make(False)  # reloads the oracle and the checkpoints from disk
    again = fresh.get_best_models(1)[0]
    assert kan_shapes(again) == shapes
    np.testing.assert_allclose(to_numpy(again(PROBE)), expected, rtol=1e-6, atol=1e-6)


class PruningHyperModel(keras_tuner.HyperModel):
    """A user's own hypermodel: a functional KAN that is pruned before its last epochs.

    It records the pruned architecture in the trial and lets `build` accept it, so that
    KerasTuner's reloads of the checkpoint (built from the hyperparameters) load it.
    """

    def build(self, hp):
        inputs = keras.Input((3,))
        hidden = KANDense(4, grid_size=hp.Choice("grid", [3, 4]), seed=0, name="hidden")(inputs)
        out_layer = KANDense(1, grid_size=3, seed=1, name="out")
        outputs = out_layer(hidden)
        # Hidden nodes 2 and 3 feed nothing: pruning removes them.
        out_layer.edge_mask.assign(np.array([[1.0], [1.0], [0.0], [0.0]], "float32"))
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(0.05), "mse")
        return accept_recorded_architectures(hp, model)

    def fit(self, hp, model, x, y, callbacks=None, **kwargs):
        keep = [c for c in callbacks if getattr(c, "filepath", None) is None]
        model.fit(x, y, callbacks=keep, **kwargs)
        model = prune(model, x, node_threshold=0.0, edge_threshold=0.0, verbose=False)
        record_architecture(hp, model)
        return model.fit(x, y, callbacks=callbacks, **kwargs)


def hyperband(hypermodel, tmp_path, project_name, overwrite=True, **kwargs):
    """Hyperband's smallest schedule with a resumed trial: bracket 1 runs two trials for
    one epoch, then resumes the better one for a second epoch; the search stops there
    (bracket 0 would only add fresh two-epoch trials)."""
    tuner = keras_tuner.Hyperband(hypermodel, objective="val_loss", max_epochs=2, factor=2,
                                  seed=0, directory=str(tmp_path), project_name=project_name,
                                  overwrite=overwrite, **kwargs)
    tuner.oracle.max_trials = 3
    return tuner


def assert_a_trial_was_resumed(tuner):
    trials = list(tuner.oracle.trials.values())
    assert all(t.status == "COMPLETED" for t in trials), [(t.status, t.message) for t in trials]
    resumed = [t for t in trials if t.hyperparameters.values.get("tuner/trial_id")]
    assert resumed, "Hyperband resumed no trial"
    return resumed


@pytest.mark.slow
def test_pruned_trial_reloads_and_resumes(tmp_path):
    tuner = hyperband(PruningHyperModel(), tmp_path, "prune")
    search(tuner)
    resumed = assert_a_trial_was_resumed(tuner)  # loaded its pruned checkpoint, trained on
    records = resumed[0].hyperparameters.values["keras_kan/architectures"]
    assert [(r["hidden"][::2], r["out"]) for r in records] == [([3, 2], [2, 3, 1])]
    best = assert_best_model_is_the_trained_one(tuner, tmp_path)
    assert [layer.units for layer in best.layers if isinstance(layer, KANDense)] == [2, 1]
    assert best.get_layer("out").grid.shape[0] == 2
    expected = to_numpy(best(PROBE))
    fresh = hyperband(PruningHyperModel(), tmp_path, "prune", overwrite=False)  # from disk
    again = fresh.get_best_models(1)[0]
    assert [layer.units for layer in again.layers if isinstance(layer, KANDense)] == [2, 1]
    np.testing.assert_allclose(to_numpy(again(PROBE)), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_reloads_take_only_recorded_architectures(tmp_path):
    """Strict loading under the tuner too: a hypermodel's model accepts the architecture
    its trial recorded (HyperKAN: its grid schedule's last grid) and nothing else."""
    hypermodel = HyperKAN((3,), 1, depth=1, hidden_units=3, grid_schedule=[3, 6],
                          spline_order=3, optimizer="adam", learning_rate=0.05, l1=0.0,
                          entropy=0.0, seed=0)
    path = str(tmp_path / "m.weights.h5")
    for grid, accepted in ((6, True), (5, False)):  # the trial's own architecture: grid 3
        saved = keras.Sequential([keras.Input((3,)), KANDense(3, grid_size=grid, seed=2,
                                                              name="kan_dense_0"),
                                  KANDense(1, grid_size=grid, seed=3, name="kan_dense_1")])
        saved.save_weights(path)
        model = hypermodel.build(keras_tuner.HyperParameters())
        if accepted:
            model.load_weights(path)
            assert kan_shapes(model) == [(3, 6), (1, 6)]
            np.testing.assert_array_equal(to_numpy(model(PROBE)), to_numpy(saved(PROBE)))
        else:
            with pytest.raises(ValueError, match=r"kan_dense_0.*\(3, 12\).*\(3, 10\)"):
                model.load_weights(path)
            assert kan_shapes(model) == [(3, 3), (1, 3)]

    # A user's hypermodel: the pruned architecture loads once recorded in the trial.
    hp = keras_tuner.HyperParameters()
    hypermodel = PruningHyperModel()
    pruned = prune(hypermodel.build(hp), X, node_threshold=0.0, edge_threshold=0.0,
                   verbose=False)
    pruned.save_weights(path)
    with pytest.raises(ValueError, match=r"hidden.*'spline_kernel'.*\(3, 6, 2\).*\(3, 6, 4\)"):
        hypermodel.build(hp).load_weights(path)
    record_architecture(hp, pruned)
    model = hypermodel.build(hp)
    model.load_weights(path)
    assert [layer.units for layer in model.layers if isinstance(layer, KANDense)] == [2, 1]
    np.testing.assert_array_equal(to_numpy(model(PROBE)), to_numpy(pruned(PROBE)))


@pytest.mark.slow
def test_hyperband_with_a_grid_schedule(tmp_path):
    hypermodel = HyperKAN((3,), 1, depth=1, hidden_units=[2, 3], grid_schedule=[3, 6],
                          optimizer="adam", learning_rate=[0.02, 0.05], l1=0.0,
                          entropy=0.0, spline_order=3)
    tuner = hyperband(hypermodel, tmp_path, "hb")
    search(tuner)
    assert_a_trial_was_resumed(tuner)  # loaded its grid-6 checkpoint, trained on
    best = assert_best_model_is_the_trained_one(tuner, tmp_path)
    assert {grid for _, grid in kan_shapes(best)} == {6}


@oracle_only
@pytest.mark.slow
def test_bayesian_optimization(tmp_path):
    hypermodel = HyperKAN((3,), 1, depth=1, hidden_units=[2, 3, 4], grid_size=[3, 5],
                          optimizer="adam", l1=0.0, entropy=[0.0, 1e-3], spline_order=3)
    # One random trial, then one the Gaussian process chooses.
    tuner = keras_tuner.BayesianOptimization(hypermodel, objective="val_loss", max_trials=2,
                                             num_initial_points=1, seed=0,
                                             directory=str(tmp_path), project_name="bo")
    search(tuner)
    assert len(tuner.oracle.trials) == 2
    assert_best_model_is_the_trained_one(tuner, tmp_path)


@oracle_only
@pytest.mark.slow
def test_executions_per_trial(tmp_path):
    hypermodel = HyperKAN((3,), 1, depth=1, hidden_units=3, grid_schedule=[3, 6],
                          optimizer="adam", learning_rate=0.05, l1=0.0, entropy=0.0,
                          spline_order=[2, 3])
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_loss", max_trials=1,
                                     executions_per_trial=2, seed=0,
                                     directory=str(tmp_path), project_name="exec")
    search(tuner)
    trial = tuner.oracle.get_best_trials(1)[0]
    # Two executions of two stages of one epoch; the score averages the last stages.
    finals = Recorder.records[1::2]
    assert len(Recorder.records) == 2 * 2
    np.testing.assert_allclose(trial.score, np.mean([r[0] for r in finals]), rtol=1e-6)
    best = tuner.get_best_models(1)[0]
    assert kan_shapes(best) == [(3, 6), (1, 6)]
    # The checkpoint is the best final-stage epoch over both executions of the trial.
    loss = best.evaluate(X_VAL, Y_VAL, verbose=0)
    np.testing.assert_allclose(loss, min(r[0] for r in finals), rtol=1e-4)


def test_mult_nodes_are_searched():
    from keras_kan import MultNodes

    hypermodel = HyperKAN(2, 1, depth=1, hidden_units=1, mult_nodes=[1, 2], mult_arity=3,
                          grid_size=3, spline_order=3, l1=0.0, entropy=0.0, optimizer="adam",
                          learning_rate=0.01, seed=0)
    hp = keras_tuner.HyperParameters()
    hp.values["mult_0"] = 2
    model = hypermodel.build(hp)
    assert list({p.name: p for p in hp.space}["mult_0"].values) == [1, 2]
    mult = [layer for layer in model.layers if isinstance(layer, MultNodes)][0]
    assert mult.n_sum == 1 and mult.arity == [3, 3]
    assert [layer.units for layer in model.layers if isinstance(layer, KANDense)] == [7, 1]
    assert to_numpy(model(X[:4, :2])).shape == (4, 1)
