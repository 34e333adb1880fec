"""Derivatives of a model (or any function) with respect to its inputs, on every backend.

For physics-informed losses: a PDE residual needs `u`'s input derivatives,
and training needs those derivatives' gradient with respect to the weights.
Every function here takes `fn`, mapping `x (B, n)` to `(B, 1)` (or `(B,)`)
with rows computed independently (a Keras model, a layer, or any function
written with `keras.ops`), and returns per-row derivatives:

```python
>>> model = keras_kan.KAN([2, 2, 1], grid_size=5, seed=0)
>>> x = keras.ops.convert_to_tensor(np.random.uniform(-1, 1, (64, 2)), "float32")
>>> keras_kan.autodiff.gradient(model, x).shape            # du/dx_i
(64, 2)
>>> keras_kan.autodiff.laplacian(model, x).shape           # sum_i d2u/dx_i^2
(64, 1)
```

They run eagerly and inside compiled functions (`jax.jit`, `tf.function`,
a Keras train step on PyTorch), and the results are differentiable with
respect to the model's weights, so a loss built from them can be trained
with `keras_kan.fit_lbfgs(model, objective=...)` or `keras_kan.ObjectiveModel`.
Rows must not interact (no batch normalization in training mode): the
derivatives are computed as the gradient of the sum over rows.

Two ways, one result: for a chain of KAN layers (`keras_kan.KAN(...)`, a
`Sequential` or functional chain of `KANDense`) the derivatives come from a
closed-form forward pass of values, slopes and curvatures through the layers
(`keras_kan.jet`, a small multiple of the forward pass); for anything else
(other layers, graphs that branch, any function) from nested autodiff,
`keras_kan.backend.input_derivatives`. `keras_kan.jet.supports(fn)` says which.
"""

from keras import ops

from keras_kan import backend as kan_backend
from keras_kan import jet

__all__ = ["gradient", "hessian_diagonal", "laplacian", "derivatives"]


def _check_x(x):
    if not ops.is_tensor(x):
        x = ops.convert_to_tensor(x)
    dtype = ops.dtype(x)
    if "float" not in dtype:
        x = ops.cast(x, "float32")
    if len(x.shape) != 2 or x.shape[-1] is None:
        raise ValueError(
            "keras_kan.autodiff: expected inputs `x` of shape (batch, features) with a "
            f"defined feature axis, got shape {tuple(x.shape)}."
        )
    return x


def _rows(fn):
    """`fn` checked to map `(B, n)` to `(B, 1)` or `(B,)`, returned as `(B,)`."""
    if not callable(fn):
        raise TypeError(f"keras_kan.autodiff: `fn` must be callable (a model or a function), "
                        f"got {type(fn).__name__}.")

    def rows(x):
        y = fn(x)
        if not ops.is_tensor(y) or not (
            len(y.shape) == 1 or (len(y.shape) == 2 and y.shape[-1] == 1)
        ):
            shape = tuple(y.shape) if hasattr(y, "shape") else type(y).__name__
            raise ValueError(
                "keras_kan.autodiff: `fn` must map x of shape (batch, n) to one value per "
                f"row, shape (batch, 1) or (batch,); it returned {shape}. For a model with "
                "several outputs, pass `lambda x: model(x)[:, j:j+1]`."
            )
        return ops.reshape(y, (-1,))

    return rows


def _derivatives(fn, x, second):
    x = _check_x(x)
    result = jet.derivatives(fn, x, second)
    if result is None:  # not a chain of KAN layers: nested autodiff
        result = kan_backend.input_derivatives(_rows(fn), x, second)
    return result


def derivatives(fn, x):
    """`(gradient, hessian_diagonal)` of `fn` at `x` in one pass, both `(B, n)`.

    Args:
        fn: maps `x (B, n)` to `(B, 1)` or `(B,)`, rows independent.
        x: `(B, n)` tensor or array (cast to float32 if not floating).

    Returns:
        `(g, h)`: `g[b, i] = d fn(x)_b / d x_bi`, `h[b, i] = d^2 fn(x)_b / d x_bi^2`.
    """
    return _derivatives(fn, x, True)


def gradient(fn, x):
    """`(B, n)`: `d fn(x)_b / d x_bi` (see `derivatives` for the arguments)."""
    return _derivatives(fn, x, False)[0]


def hessian_diagonal(fn, x):
    """`(B, n)`: `d^2 fn(x)_b / d x_bi^2` (see `derivatives` for the arguments)."""
    return derivatives(fn, x)[1]


def laplacian(fn, x):
    """`(B, 1)`: `sum_i d^2 fn(x)_b / d x_bi^2` (see `derivatives` for the arguments)."""
    return ops.sum(hessian_diagonal(fn, x), axis=-1, keepdims=True)
