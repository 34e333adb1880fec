"""`HyperKAN`: a KerasTuner `HyperModel` that searches KAN architectures and training.

Needs the optional extra: `pip install keras-kan[tuner]` (keras-tuner, and
tensorboard, which keras-tuner imports on the TensorFlow backend).

A trial may change its model's weight shapes while it trains (a grid schedule
refines the grid; a user's own `HyperModel.fit` may prune). KerasTuner stores
a trial as a weight checkpoint and reloads it into the model built again from
the trial's hyperparameters (`get_best_models`, a tuner reloaded with
`overwrite=False`, Hyperband's resumed trials). `keras_kan.KANDense` loads
strictly, as Keras layers do: weights of another grid size or width are
refused, unless the layer was told beforehand to accept that architecture
(`KANDense.accept_architecture`) because the change is recorded:

- `HyperKAN` records it in its own config: with a `grid_schedule`, every
  checkpoint holds the last stage's model, so `HyperKAN.build` lets its layers
  accept the schedule's final grid size (and nothing else).
- A user's `HyperModel` that changes the architecture in `fit` (e.g.
  `keras_kan.prune`) records the final architecture in the trial with
  `record_architecture(hp, model)` and lets `build` accept it with
  `accept_recorded_architectures(hp, model)`. `HyperKAN.build` does the latter
  too, for subclasses whose `fit` prunes.

Plain `model.load_weights` and `keras.saving.load_model` never adopt shapes.
"""
import itertools
import math

import keras
import numpy as np

try:
    import keras_tuner
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "keras_kan.tuner needs KerasTuner (and, on the TensorFlow backend, "
        "tensorboard): `pip install keras-kan[tuner]`."
    ) from error

from keras_kan.layers import KANDense
from keras_kan.lbfgs import fit_lbfgs
from keras_kan.products import MultNodes
from keras_kan.regularizers import KANRegularizer
from keras_kan.surgery import refine
from keras_kan.validation import check_grid_range

__all__ = ["HyperKAN", "record_architecture", "accept_recorded_architectures"]

#: The trial value (`hp.values`) that holds recorded architectures.
ARCHITECTURES = "keras_kan/architectures"

LBFGS = "lbfgs"

_DEFAULTS = {
    "depth": (1, 3),  # Int range of hidden layers
    "hidden_units": (2, 16, 2),  # Int range (min, max, step) per hidden layer
    "grid_size": [3, 5, 10],
    "spline_order": [1, 2, 3],
    "l1": [0.0, 1e-4, 1e-3, 1e-2],
    "entropy": [0.0, 1e-3, 1e-2],
    "optimizer": ["adam", LBFGS],
    "learning_rate": (1e-3, 1e-1),  # Float range, log sampling
}


def _is_int(value, minimum):
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and (
        value >= minimum)


def _is_real(value, minimum):
    return not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and (
        math.isfinite(float(value)) and value >= minimum)


def _search_arg(name, value, check, what):
    """`None` (default range), one value (fixed) or a list/tuple (a choice)."""
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values or not all(check(v) for v in values):
        raise ValueError(
            f"Received an invalid value for argument `{name}`: expected {what}, or a "
            f"non-empty list of them to choose from, got {value!r}."
        )
    return values


class HyperKAN(keras_tuner.HyperModel):
    """A searchable KAN: depth, widths, grid, spline order, regularization, optimizer.

    In the style of KerasTuner's applications (`HyperResNet`): every search
    argument is `None` (its default range), one value (fixed, shown as a
    `Fixed` hyperparameter) or a list/tuple (narrowed to a `Choice`).
    `build(hp)` returns a built, compiled `keras.Sequential` of
    `keras_kan.KANDense` layers; `fit(hp, model, ...)` trains it with
    `model.fit` or `keras_kan.fit_lbfgs` and runs the grid schedule.

    ```python
    hypermodel = HyperKAN(input_shape=(5,), output_units=1, grid_schedule=[3, 6])
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_loss", max_trials=10)
    tuner.search(x, y, epochs=20, validation_data=(x_val, y_val))
    best = tuner.get_best_models(1)[0]
    ```

    Args:
        input_shape: `(n,)` (or the int `n`): the number of input features.
        output_units: units of the output layer (required unless `classes`).
        classes: shortcut for classification into `classes` labels
            (integers `0..classes-1`): softmax output,
            `sparse_categorical_crossentropy` and `accuracy`.
        output_activation: activation after the last KANDense (default linear,
            or softmax with `classes`).
        loss: the compiled loss (default `"mse"`, or cross-entropy with
            `classes`).
        metrics: compiled metrics (default none, `["accuracy"]` with
            `classes`).
        depth: number of hidden KANDense layers (default `Int` 1..3; 0
            allowed for a single-layer KAN).
        hidden_units: width of every hidden layer `units_<i>` (default
            `Int` 2..16 step 2).
        grid_size: grid intervals (default `Choice` 3, 5, 10). With
            `grid_schedule` it is the schedule's first size and is not searched.
        spline_order: default `Choice` 1, 2, 3.
        l1, entropy: `keras_kan.KANRegularizer` strengths (default
            `Choice` of a few values including 0; no regularizer when both 0).
        optimizer: names of Keras optimizers and/or `"lbfgs"` (default
            `Choice` `"adam"`, `"lbfgs"`). `"lbfgs"` trains with
            `keras_kan.fit_lbfgs`, one L-BFGS step per epoch.
        learning_rate: for the Keras optimizers (default `Float` 1e-3..1e-1,
            log sampling; not searched for `"lbfgs"`).
        grid_schedule: e.g. `[3, 5, 10]`: train on a grid of 3, refine to 5,
            train, refine to 10, train (pykan's grid extension). The epochs
            given to `search` are split evenly between the stages (the last
            stage gets at least one). The trial's objective and checkpoint come
            from the last stage, i.e. from the final model.
        grid_range: initial grid range of every layer (scale inputs to it), or
            `"data"`: each layer's grid follows its first training batch.
        base_activation: residual activation of every layer.
        seed: seed of the layers' initial weights (the same for every trial),
            or None for fresh random weights per trial.
        mult_nodes: multiplication nodes per hidden layer, `mult_<i>` (pykan's
            `[n_sum, n_mult]` with `n_sum = units_<i>`; see
            `keras_kan.MultNodes`). Default None: none, and no hyperparameter.
        mult_arity: the arity of every mult node (int >= 2, default 2).
        lbfgs_options: extra keyword arguments for `keras_kan.fit_lbfgs`
            (`max_iter`, `history_size`, ...).
        name, tunable: as for `keras_tuner.HyperModel`.
    """

    def __init__(
        self,
        input_shape,
        output_units=None,
        *,
        classes=None,
        output_activation=None,
        loss=None,
        metrics=None,
        depth=None,
        hidden_units=None,
        grid_size=None,
        spline_order=None,
        l1=None,
        entropy=None,
        optimizer=None,
        learning_rate=None,
        grid_schedule=None,
        grid_range=(-1.0, 1.0),
        base_activation="silu",
        seed=None,
        mult_nodes=None,
        mult_arity=2,
        lbfgs_options=None,
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        if _is_int(input_shape, 1):
            input_shape = (int(input_shape),)
        if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 1
                and _is_int(input_shape[0], 1)):
            raise ValueError(
                "Received an invalid value for argument `input_shape`: expected `(n,)` "
                f"with n >= 1 input features, got {input_shape!r}."
            )
        self.input_shape = (int(input_shape[0]),)
        if classes is not None:
            if not _is_int(classes, 2):
                raise ValueError(
                    "Received an invalid value for argument `classes`: expected an int "
                    f">= 2, got {classes!r}."
                )
            if output_units is not None and output_units != classes:
                raise ValueError(
                    f"Arguments `output_units` ({output_units!r}) and `classes` "
                    f"({classes!r}) disagree; pass one of them."
                )
            output_units = classes
            output_activation = output_activation or "softmax"
            loss = loss or "sparse_categorical_crossentropy"
            metrics = ["accuracy"] if metrics is None else metrics
        if not _is_int(output_units, 1):
            raise ValueError(
                "Received an invalid value for argument `output_units`: expected an int "
                f">= 1 (or pass `classes=`), got {output_units!r}."
            )
        self.output_units = int(output_units)
        self.classes = classes
        self.output_activation = output_activation
        if output_activation is not None:
            keras.activations.get(output_activation)  # fails early on a bad name
        self.loss = loss or "mse"
        self.metrics = metrics

        self.depth = _search_arg("depth", depth, lambda v: _is_int(v, 0), "an int >= 0")
        self.hidden_units = _search_arg("hidden_units", hidden_units,
                                        lambda v: _is_int(v, 1), "an int >= 1")
        self.mult_nodes = _search_arg("mult_nodes", mult_nodes, lambda v: _is_int(v, 0),
                                      "an int >= 0")
        if not _is_int(mult_arity, 2):
            raise ValueError("Received an invalid value for argument `mult_arity`: expected "
                             f"an int >= 2, got {mult_arity!r}.")
        self.mult_arity = int(mult_arity)
        self.spline_order = _search_arg("spline_order", spline_order,
                                        lambda v: _is_int(v, 0), "an int >= 0")
        self.l1 = _search_arg("l1", l1, lambda v: _is_real(v, 0), "a number >= 0")
        self.entropy = _search_arg("entropy", entropy, lambda v: _is_real(v, 0),
                                   "a number >= 0")
        self.learning_rate = _search_arg("learning_rate", learning_rate,
                                         lambda v: _is_real(v, 0) and v > 0, "a number > 0")
        self.optimizer = _search_arg("optimizer", optimizer, _is_optimizer_name,
                                     '"lbfgs" or the name of a Keras optimizer')
        if grid_schedule is not None:
            schedule = list(grid_schedule) if isinstance(grid_schedule, (list, tuple)) else None
            if not schedule or not all(_is_int(g, 1) for g in schedule) or any(
                    b <= a for a, b in itertools.pairwise(schedule)):
                raise ValueError(
                    "Received an invalid value for argument `grid_schedule`: expected a "
                    f"list of increasing grid sizes like [3, 5, 10], got {grid_schedule!r}."
                )
            if grid_size is not None:
                raise ValueError(
                    "Pass `grid_size` or `grid_schedule`, not both: the schedule's first "
                    f"entry is the grid size (got grid_size={grid_size!r}, "
                    f"grid_schedule={grid_schedule!r})."
                )
            grid_schedule = [int(g) for g in schedule]
            grid_size = grid_schedule[0]
        self.grid_schedule = grid_schedule
        self.grid_size = _search_arg("grid_size", grid_size, lambda v: _is_int(v, 1),
                                     "an int >= 1")
        self.grid_range = check_grid_range(grid_range, keywords=("data",))
        self.base_activation = base_activation
        if seed is not None and not _is_int(seed, 0):
            raise ValueError(
                f"Received an invalid value for argument `seed`: expected an int >= 0 or "
                f"None, got {seed!r}."
            )
        self.seed = seed
        self.lbfgs_options = dict(lbfgs_options or {})
        for key in ("steps", "callbacks", "validation_data", "x", "y"):
            if key in self.lbfgs_options:
                raise ValueError(
                    f"Received an invalid value for argument `lbfgs_options`: `{key}` comes "
                    "from the search (`epochs`, `callbacks`, data), not from lbfgs_options."
                )

    # ------------------------------------------------------------------ space
    @staticmethod
    def _value(hp, name, values, default):
        """Register `name` as Fixed / Choice (from `values`) or its default."""
        if values is None:
            return default()
        if len(values) == 1:
            return hp.Fixed(name, values[0])
        return hp.Choice(name, values)

    def _optimizer(self, hp):
        return self._value(hp, "optimizer", self.optimizer,
                           lambda: hp.Choice("optimizer", _DEFAULTS["optimizer"]))

    def build(self, hp):
        """A built, compiled `keras.Sequential` for the hyperparameters `hp`."""
        depth = self._value(hp, "depth", self.depth,
                            lambda: hp.Int("depth", *_DEFAULTS["depth"]))
        low, high, step = _DEFAULTS["hidden_units"]
        units = [self._value(hp, f"units_{i}", self.hidden_units,
                             lambda i=i: hp.Int(f"units_{i}", low, high, step=step))
                 for i in range(depth)]
        grid_size = self._value(hp, "grid_size", self.grid_size,
                                lambda: hp.Choice("grid_size", _DEFAULTS["grid_size"]))
        spline_order = self._value(hp, "spline_order", self.spline_order,
                                   lambda: hp.Choice("spline_order", _DEFAULTS["spline_order"]))
        l1 = self._value(hp, "l1", self.l1, lambda: hp.Choice("l1", _DEFAULTS["l1"]))
        entropy = self._value(hp, "entropy", self.entropy,
                              lambda: hp.Choice("entropy", _DEFAULTS["entropy"]))
        optimizer_name = self._optimizer(hp)
        keras_optimizers = [v for v in (self.optimizer or _DEFAULTS["optimizer"]) if v != LBFGS]
        learning_rate = None
        if keras_optimizers:
            with hp.conditional_scope("optimizer", keras_optimizers):
                learning_rate = self._value(
                    hp, "learning_rate", self.learning_rate,
                    lambda: hp.Float("learning_rate", *_DEFAULTS["learning_rate"],
                                     sampling="log"))

        regularizer = (KANRegularizer(l1=float(l1), entropy=float(entropy))
                       if (l1 or entropy) else None)
        seed = self.seed if self.seed is not None else int(np.random.randint(0, 2**31 - 1))
        mults = [0 if self.mult_nodes is None else int(self._value(
            hp, f"mult_{i}", self.mult_nodes, None)) for i in range(depth)] + [0]
        widths = [self.input_shape[0], *[int(u) for u in units], self.output_units]
        layers = [keras.Input(self.input_shape)]
        offset = 0
        for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
            n_in = n_in + (mults[i - 1] if i else 0)  # nodes of the layer before
            subnodes = n_out + self.mult_arity * mults[i]
            layers.append(KANDense(
                subnodes, grid_size=int(grid_size), spline_order=int(spline_order),
                grid_range=self.grid_range, base_activation=self.base_activation,
                regularizer=regularizer, seed=seed, seed_offset=offset, name=f"kan_dense_{i}"))
            offset += KANDense.init_draws(n_in, subnodes, int(grid_size))
            if mults[i]:
                layers.append(MultNodes(n_out, [self.mult_arity] * mults[i],
                                        name=f"mult_nodes_{i}"))
        if self.output_activation is not None:
            layers.append(keras.layers.Activation(self.output_activation, name="output"))
        model = keras.Sequential(layers, name=self.name or "hyper_kan")
        if self.grid_schedule and self.grid_schedule[-1] != self.grid_schedule[0]:
            # A trial's checkpoint is written in the schedule's last stage (see `fit`).
            for layer in _kan_layers(model):
                layer.accept_architecture(grid_size=self.grid_schedule[-1])
        accept_recorded_architectures(hp, model)

        if optimizer_name == LBFGS:
            optimizer = keras.optimizers.Adam()  # compile needs one; fit_lbfgs ignores it
        else:
            optimizer = keras.optimizers.get(
                {"class_name": optimizer_name,
                 "config": {"learning_rate": float(learning_rate)}})
        model.compile(optimizer=optimizer, loss=self.loss, metrics=self.metrics)
        return model

    # --------------------------------------------------------------- training
    def fit(self, hp, model, *args, **kwargs):
        """Train `model` for the trial `hp`; returns the final model's `History`.

        `args`/`kwargs` are those given to `tuner.search` (`x`, `y`,
        `epochs`, `validation_data`, `callbacks`, ... and Hyperband's
        `initial_epoch`). With a `grid_schedule` the epochs are split
        between the stages and the model is refined between them (only to
        grids finer than it has: a trial resumed by Hyperband continues on its
        grid). Callbacks that write the model to a file (they have a
        `filepath`: KerasTuner's trial checkpoint, `ModelCheckpoint`) run
        in the last stage only, so the checkpoint holds the final model and
        matches the objective reported to the tuner.
        """
        optimizer = hp.values.get("optimizer")
        kwargs = dict(kwargs)
        epochs = int(kwargs.pop("epochs", 1))
        initial_epoch = int(kwargs.pop("initial_epoch", 0))
        callbacks = list(kwargs.pop("callbacks", None) or [])
        schedule = self.grid_schedule or [None]
        stages = len(schedule)
        bounds = [s * epochs // stages for s in range(stages)] + [epochs]
        x = args[0] if args else kwargs.get("x")
        samples = x if hasattr(x, "shape") and not isinstance(x, dict) else None

        history = None
        for stage, grid in enumerate(schedule):
            last = stage == stages - 1
            if grid is not None and grid > _current_grid(model):
                model = refine(model, grid, samples)
            start, stop = max(bounds[stage], initial_epoch), bounds[stage + 1]
            if stop <= start and not last:
                continue
            stage_callbacks = callbacks if last else [
                c for c in callbacks if getattr(c, "filepath", None) is None]
            if optimizer == LBFGS:
                history = self._fit_lbfgs(model, args, kwargs, stop - start, stage_callbacks)
            else:
                history = model.fit(*args, epochs=stop, initial_epoch=start,
                                    callbacks=stage_callbacks, **kwargs)
        return history

    def _fit_lbfgs(self, model, args, kwargs, steps, callbacks):
        names = ("x", "y", "batch_size")
        data = dict(zip(names, args))
        for key in names:
            if key in kwargs:
                data[key] = kwargs[key]
        unsupported = sorted(set(kwargs) - {"x", "y", "batch_size", "validation_data",
                                            "validation_split", "verbose", "sample_weight",
                                            "shuffle"})
        if unsupported or len(args) > 3:
            raise ValueError(
                "HyperKAN.fit with optimizer='lbfgs' (keras_kan.fit_lbfgs) takes x, y, "
                "epochs, callbacks, validation_data, validation_split, sample_weight and "
                f"verbose from the search; it cannot use {unsupported or args[3:]}."
            )
        x, y = data.get("x"), data.get("y")
        sample_weight = kwargs.get("sample_weight")
        validation_data = kwargs.get("validation_data")
        split = kwargs.get("validation_split") or 0.0
        if split and validation_data is None:
            # As Model.fit does: the last `split` fraction, before any shuffling.
            n = len(x)
            cut = int(n * (1.0 - split))
            validation_data = (x[cut:], y[cut:])
            x, y = x[:cut], y[:cut]
            sample_weight = None if sample_weight is None else sample_weight[:cut]
        # Full batch, as pykan trains; `batch_size` and `shuffle` are for model.fit.
        return fit_lbfgs(model, x, y, steps=steps, validation_data=validation_data,
                         callbacks=callbacks, sample_weight=sample_weight,
                         verbose=kwargs.get("verbose", "auto"), **self.lbfgs_options)


def _is_optimizer_name(value):
    if value == LBFGS:
        return True
    if not isinstance(value, str):
        return False
    try:
        keras.optimizers.get(value)
    except ValueError:
        return False
    return True


def _kan_layers(model):
    return [layer for layer in model.layers if isinstance(layer, KANDense)]


def _current_grid(model):
    """The finest grid size among the model's KANDense layers (0 if none)."""
    return max((layer.grid_size for layer in _kan_layers(model)), default=0)


def record_architecture(hp, model):
    """Record `model`'s KAN architecture in the trial whose hyperparameters are `hp`.

    For a `HyperModel.fit` that changes the architecture of the model it trains
    (`keras_kan.prune`, `keras_kan.refine`): call it with the changed model
    before training it on (the trial's checkpoint holds that model). KerasTuner
    saves `hp` with the trial, so the record survives a reload from disk and is
    passed on to Hyperband's resumed trials; `accept_recorded_architectures`
    reads it back. Each distinct architecture is kept (executions of a trial
    may prune differently).

    The record is a value of `hp` (`hp.values["keras_kan/architectures"]`, a
    list of `{layer name: [inputs, grid_size, units]}`), so it shows in the
    tuner's summaries, and a finished trial's values no longer equal a fresh
    draw of the same hyperparameters (KerasTuner may try those again).

    Args:
        hp: the `keras_tuner.HyperParameters` given to `fit`.
        model: the changed model; its top-level `KANDense` layers are recorded
            by name.
    """
    record = {layer.name: [int(layer.input_dim), int(layer.grid_size), int(layer.units)]
              for layer in _kan_layers(model)}
    records = [dict(r) for r in hp.values.get(ARCHITECTURES, [])]
    if record not in records:
        records.append(record)
    hp.values[ARCHITECTURES] = records


def accept_recorded_architectures(hp, model):
    """Let `model`'s KAN layers load the architectures recorded in `hp`; returns `model`.

    Call it in `HyperModel.build` on the model it returns (built, with the
    layer names used when recording): when KerasTuner then loads the trial's
    checkpoint, each `KANDense` takes the recorded architecture of the same
    name (`KANDense.accept_architecture`); any other shape is still refused.
    Without a record it does nothing.
    """
    for record in hp.values.get(ARCHITECTURES, []):
        for layer in _kan_layers(model):
            if layer.name in record:
                n, grid_size, units = record[layer.name]
                layer.accept_architecture(units=units, grid_size=grid_size, input_dim=n)
    return model
