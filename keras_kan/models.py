"""`KAN(width=...)`, a pykan-style stack of KANDense; `ObjectiveModel`, `fit` on any objective."""

import keras
import numpy as np

from keras_kan.layers import KANDense
from keras_kan.products import MultNodes
from keras_kan.validation import check_bool, check_int

__all__ = ["KAN", "ObjectiveModel", "parse_width"]


def parse_width(width, mult_arity=2):
    """pykan's width list -> `(n_in, [(n_sum, arity list), ...])`, one pair per layer.

    `width` entries are ints (`n` = `[n, 0]`) or `[n_sum, n_mult]` pairs (the
    first entry, the inputs, has no mult nodes). `mult_arity` is an int (every
    mult node) or pykan's per-layer lists, one list per width entry (inputs
    and outputs included), one arity per mult node of that entry:
    `[[], [2, 3], []]`.

    Raises:
        ValueError: a width or arity that is not of these forms.
    """
    def bad(why):
        return ValueError(f"Received an invalid value for argument `width`: {why}, got "
                          f"{width!r}.")

    def count(value, minimum):
        return (not isinstance(value, bool) and isinstance(value, (int, np.integer))
                and value >= minimum)

    if isinstance(width, (str, bytes)) or not hasattr(width, "__len__") or len(width) < 2:
        raise bad("expected a list of at least two layer widths like [2, 5, 1] or "
                  "[2, [1, 1], 1]")
    pairs = []
    for w in width:
        if isinstance(w, (list, tuple)):
            if len(w) != 2 or not all(count(v, 0) for v in w):
                raise bad(f"a multiplication entry must be [n_sum, n_mult] with two integers "
                          f">= 0, not {w!r}")
            pairs.append((int(w[0]), int(w[1])))
        elif count(w, 1):
            pairs.append((int(w), 0))
        else:
            raise bad(f"every width must be a positive integer or an [n_sum, n_mult] pair, "
                      f"not {w!r}")
        if sum(pairs[-1]) < 1:
            raise bad(f"the entry {w!r} has no node")
    if pairs[0][1]:
        raise bad(f"the first entry (the inputs) cannot have multiplication nodes ({width[0]!r})")
    if count(mult_arity, 2):
        arities = [[int(mult_arity)] * m for _, m in pairs]
    elif isinstance(mult_arity, (list, tuple)) and len(mult_arity) == len(pairs) and all(
            isinstance(a, (list, tuple)) for a in mult_arity):
        arities = []
        for (_, m), entry in zip(pairs, mult_arity):
            if len(entry) != m or not all(count(a, 2) for a in entry):
                raise ValueError(
                    "Received an invalid value for argument `mult_arity`: each entry must "
                    "list one integer >= 2 per multiplication node of the same width entry; "
                    f"{entry!r} does not match {m} mult node(s) (width {width!r}, "
                    f"mult_arity {mult_arity!r}).")
            arities.append([int(a) for a in entry])
    else:
        raise ValueError(
            "Received an invalid value for argument `mult_arity`: expected an integer >= 2 "
            f"or one list of arities per width entry ({len(pairs)} lists), got "
            f"{mult_arity!r}.")
    return pairs[0][0], [(n, a) for (n, _), a in zip(pairs[1:], arities[1:])]


def KAN(width, seed=None, name=None, mult_arity=2, affine_trainable=False, product_offset=0.0,
        **layer_kwargs):
    """A `keras.Sequential` of `KANDense` layers (and `MultNodes`) from a width list.

    `KAN(width=[2, 5, 1], grid_size=5, spline_order=3, seed=0)` is
    `Sequential([Input((2,)), KANDense(5, ...), KANDense(1, ...)])`.
    `KAN(width=[2, [1, 1], 1], mult_arity=2)` (pykan 0.2's MultKAN) has a
    hidden layer of one sum node and one multiplication node:
    `Input((2,)), KANDense(3), MultNodes(n_sum=1, arity=[2]), KANDense(1)`;
    the KANDense computes the `n_sum + sum(arity)` subnodes (see
    `keras_kan.products`).

    Args:
        width: `[n_in, hidden..., n_out]`; each entry after the first an int
            or an `[n_sum, n_mult]` pair (see `parse_width`).
        seed: int; the layers draw their initial weights in turn from one
            stream seeded with `seed`, so `KAN(width, grid_size=G, seed=s)`
            starts from exactly the weights of pykan's
            `KAN(width, grid=G, k=3, seed=s)` (up to float32 rounding of the
            least-squares fit). None draws the seed from NumPy's global state.
        name: model name.
        mult_arity: int >= 2, or one list of arities per width entry (pykan's
            `[[], [2, 3], []]`).
        affine_trainable: train the node and subnode affine maps (pykan's
            `affine_trainable`); then every layer gets a `MultNodes`, with or
            without mult nodes, as in pykan.
        product_offset: the initial shift of every mult node (see
            `keras_kan.products`: it keeps a mult node off the zero-product
            saddle when subnodes start small, e.g. `use_base=False`); 0 is pykan's init.
        **layer_kwargs: passed to every `KANDense` (`grid_size`,
            `spline_order`, `grid_range`, `regularizer`, ...).

    Returns:
        a built `keras.Sequential`.
    """
    n_in, layer_specs = parse_width(width, mult_arity)
    affine_trainable = check_bool("affine_trainable", affine_trainable)
    if seed is not None:
        seed = check_int("seed", seed, 0)
    else:  # still one stream for the whole model, drawn from NumPy's global state
        seed = int(np.random.randint(0, 2**31 - 1))
    grid_size = layer_kwargs.get("grid_size", 5)
    layers = [keras.Input((n_in,))]
    offset = 0
    for depth, (n_sum, arity) in enumerate(layer_specs):
        subnodes = n_sum + sum(arity)
        layers.append(KANDense(subnodes, seed=seed, seed_offset=offset,
                               name=f"kan_dense_{depth}", **layer_kwargs))
        offset += KANDense.init_draws(n_in, subnodes, grid_size)
        if arity or affine_trainable:
            layers.append(MultNodes(n_sum, arity, affine_trainable=affine_trainable,
                                    product_offset=product_offset, name=f"mult_nodes_{depth}"))
        n_in = n_sum + len(arity)
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
