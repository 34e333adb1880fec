"""`KAN(width=...)`, a pykan-style stack of KANDense; `ObjectiveModel`, `fit` on any objective."""

import keras
import numpy as np

from keras_kan.layers import KANDense
from keras_kan.validation import check_int

__all__ = ["KAN", "ObjectiveModel"]


def KAN(width, seed=None, name=None, **layer_kwargs):
    """A `keras.Sequential` of `KANDense` layers from a width list.

    `KAN(width=[2, 5, 1], grid_size=5, spline_order=3, seed=0)` is
    `Sequential([Input((2,)), KANDense(5, ...), KANDense(1, ...)])`.

    Args:
        width: `[n_in, hidden..., n_out]`, at least two positive ints. pykan's
            multiplication nodes (`[n, m]` pairs) are not supported.
        seed: int; the layers draw their initial weights in turn from one
            stream seeded with `seed`, so `KAN(width, grid_size=G, seed=s)`
            starts from exactly the weights of pykan's
            `KAN(width, grid=G, k=3, seed=s)` (up to float32 rounding of the
            least-squares fit). None draws the seed from NumPy's global state.
        name: model name.
        **layer_kwargs: passed to every `KANDense` (`grid_size`,
            `spline_order`, `grid_range`, `regularizer`, ...).

    Returns:
        a built `keras.Sequential`.
    """
    if isinstance(width, (str, bytes)) or not hasattr(width, "__len__") or len(width) < 2:
        raise ValueError(
            f"Received an invalid value for argument `width`: expected a list of at "
            f"least two layer widths like [2, 5, 1], got {width!r}."
        )
    for w in width:
        if isinstance(w, (list, tuple)):
            raise ValueError(
                f"Received an invalid value for argument `width`: multiplication nodes "
                f"({w!r}) are not supported; use plain integers, got {width!r}."
            )
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
            raise ValueError(
                f"Received an invalid value for argument `width`: every width must be a "
                f"positive integer, got {width!r}."
            )
    if seed is not None:
        seed = check_int("seed", seed, 0)
    else:  # still one stream for the whole model, drawn from NumPy's global state
        seed = int(np.random.randint(0, 2**31 - 1))
    grid_size = layer_kwargs.get("grid_size", 5)
    layers = [keras.Input((width[0],))]
    offset = 0
    for depth, (n_in, units) in enumerate(zip(width[:-1], width[1:])):
        layers.append(KANDense(units, seed=seed, seed_offset=offset, name=f"kan_dense_{depth}",
                               **layer_kwargs))
        offset += KANDense.init_draws(n_in, units, grid_size)
    return keras.Sequential(layers, name=name or "kan")


class ObjectiveModel(keras.Model):
    """Trains `model` to minimize `objective(model)` with any Keras optimizer via `fit`.

    `fit_lbfgs(model, objective=fn)` is the L-BFGS route; this wrapper is the
    first-order one (Adam, SGD, schedules, callbacks), on every backend: it
    overrides only `compute_loss`, so Keras's own train step computes the
    gradients (under `jit`, `tf.function` or eager PyTorch as compiled).

    ```python
    >>> kan = keras_kan.KAN([2, 2, 1], grid_size=5, seed=0)
    >>> trainer = keras_kan.ObjectiveModel(kan, objective)   # objective(kan) -> scalar
    >>> trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    >>> history = trainer.fit(epochs=500, verbose=0)          # one step per epoch
    ```

    The weights are `model`'s own (trained in place); `trainer(x)` is
    `model(x)`. `fit` without `x` runs one optimizer step per epoch (a
    one-row placeholder batch feeds Keras's data pipeline; the objective holds
    its own data). Penalties in `model.losses` (e.g. a `KANRegularizer`) are
    added to the objective only when the objective calls the model in training
    mode. Save `trainer.model` (the objective is a Python function and is not
    serialized).

    Args:
        model: a built Keras model (e.g. `KAN(...)`).
        objective: `fn(model) -> scalar tensor`, written with `keras.ops`
            (e.g. with `keras_kan.autodiff` derivatives).
        **kwargs: `keras.Model` arguments (`name`).
    """

    def __init__(self, model, objective, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model) or not model.built:
            raise ValueError("ObjectiveModel: `model` must be a built keras.Model, got "
                             f"{type(model).__name__}.")
        if not callable(objective):
            raise TypeError("ObjectiveModel: `objective` must be a callable "
                            f"`fn(model) -> scalar`, got {type(objective).__name__}.")
        self.model = model
        self.objective = objective

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        del x, y, y_pred, sample_weight, training
        value = self.objective(self.model)
        if tuple(getattr(value, "shape", (None,))) not in ((), (1,)):
            raise ValueError("ObjectiveModel: `objective(model)` must return a scalar tensor, "
                             f"got {getattr(value, 'shape', type(value).__name__)}.")
        value = keras.ops.reshape(value, ())
        losses = self.model.losses
        return value + keras.ops.sum(keras.ops.stack(losses)) if losses else value

    def fit(self, x=None, y=None, epochs=1, **kwargs):
        if x is None:
            shape = tuple(self.model.inputs[0].shape[1:]) if getattr(
                self.model, "inputs", None) else (1,)
            x = np.zeros((1,) + shape, "float32")
            kwargs.setdefault("batch_size", 1)
        return super().fit(x, y, epochs=epochs, **kwargs)
