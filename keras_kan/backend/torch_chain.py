"""PyTorch: a model's forward pass without Keras's per-call machinery, where that is exact.

Eager PyTorch runs `Layer.__call__` (input conversion, autocast scopes, masks,
name scopes, the call context, `nn.Module` hooks) on every call of every layer.
On the small models L-BFGS trains, that Python is a large part of an
evaluation: on the canonical run's `[2, 5, 1]` KAN with its penalty it was
about 15% of the objective and its gradient, on a `[1, 16, 16, 1]` MLP of
`Dense` layers about half (cProfile, 2 CPU cores).

`layer_chain(model)` returns the layers to call in turn, `layer.call(h,
training=...)`, when that gives exactly what `model(x, training=...)` gives,
and None otherwise (the caller then uses `model(...)`). It accepts a plain
`keras.Sequential` (not a subclass: a subclass may override `call`) of
`KANDense` and `keras.layers.Dense` layers (exact classes), built, with one
float dtype policy whose compute and variable dtypes agree (no autocast), no
activity regularizer (applied by `__call__`), no masking, and no
`keras.distribution` (output layouts are applied by `__call__`). Penalties that
`call` adds with `add_loss` land in the layers' losses as they do under
`__call__`; `forward(...)` clears the previous call's first, as the outermost
`__call__` does. `x` must already be a tensor of the first layer's input dtype
on the model's device (what `__call__` would convert), else `forward` returns
None.

`compiled_mse(model)` is the same idea for the loss: Keras's `compute_loss` on
PyTorch spends about 1 ms an evaluation in its own Python (name scopes, dtype
checks, structure walks), which on the continual-learning KAN was 38% of an
evaluation. For the one loss L-BFGS users compile most (`"mse"` /
`MeanSquaredError()`, default reduction, no loss weights, one output, and
`compute_loss` not overridden) it returns the same total loss computed with the
torch ops Keras's code runs, in the same order (the same bits; tested).
"""

import functools

import keras
import torch

__all__ = ["ENABLED", "layer_chain", "forward", "compiled_mse"]

#: Set to False to send every evaluation through `model(...)` (benchmarks compare both).
ENABLED = True

_FLOATS = ("float16", "bfloat16", "float32", "float64")


def _lean_classes():
    from keras_kan.layers import KANDense  # layers imports backend: import on first use

    return (KANDense, keras.layers.Dense)


def layer_chain(model):
    """The list of layers whose `call`s in turn are `model.call`, or None (see module doc)."""
    if type(model) is not keras.Sequential or not model.built:
        return None
    if keras.distribution.distribution() is not None:
        return None
    classes = _lean_classes()
    layers = list(model.layers)
    if not layers:
        return None
    for layer in layers:
        if type(layer) not in classes or not layer.built:
            return None
        policy = layer.dtype_policy
        if (policy.compute_dtype != policy.variable_dtype or policy.compute_dtype not in _FLOATS
                or getattr(policy, "quantization_mode", None) is not None):
            return None
        if getattr(layer, "activity_regularizer", None) is not None:
            return None
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return None
    return layers


def forward(model, layers, x, training):
    """`model(x, training=training)` by calling each layer's `call`; None when `x` is not
    a tensor the first layer takes as it is (then call the model)."""
    if not ENABLED or not isinstance(x, torch.Tensor) or x.ndim < 1:
        return None
    if getattr(x, "_keras_mask", None) is not None:  # __call__ would pass the mask on
        return None
    if keras.backend.standardize_dtype(x.dtype) != layers[0].input_dtype:
        return None
    model._clear_losses()
    h = x
    for layer in layers:
        out = _dense(layer, h) if type(layer) is keras.layers.Dense else None
        h = layer.call(h, training=training) if out is None else out
    return h


#: Keras activations whose torch backend is one torch call (None: the identity).
_ONE_CALL = {keras.activations.linear: None, keras.activations.tanh: torch.tanh,
             keras.activations.silu: torch.nn.functional.silu}


def _dense(layer, h):
    """`Dense.call(h)` (`ops.matmul`, `ops.add`, the activation) as the torch calls Keras's
    torch backend makes, without its conversions; None where the kernel is not on `h`'s
    device and dtype (then `call` converts)."""
    kernel = layer.kernel.value
    if kernel.device != h.device or kernel.dtype != h.dtype:
        return None
    h = torch.matmul(h, kernel)
    if layer.bias is not None:
        h = torch.add(h, layer.bias.value)
    if layer.activation in _ONE_CALL:
        fn = _ONE_CALL[layer.activation]
        return h if fn is None else fn(h)
    return layer.activation(h)


def _same_rank(x1, x2):
    """Keras's `squeeze_or_expand_to_same_rank` (losses), in torch."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        return (x1, x2.unsqueeze(-1)) if x2.ndim == 1 else (x1.squeeze(-1), x2)
    if x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        return (x1.unsqueeze(-1), x2) if x1.ndim == 1 else (x1, x2.squeeze(-1))
    return x1, x2


def compiled_mse(model):
    """`f(y, y_pred, sample_weight) -> total loss` (compiled MSE plus `model.losses`), or
    None when `model.compute_loss` is anything else or is not built yet (see module doc).
    `f` itself returns None for arguments it does not take as they are."""
    if not ENABLED or type(model).compute_loss is not keras.Model.compute_loss:
        return None
    compiled = getattr(model, "_compile_loss", None)
    flat = getattr(compiled, "_flat_losses", None) if getattr(compiled, "built", False) else None
    if not flat or len(flat) != 1:
        return None
    path, loss, weight = flat[0][0], flat[0][1], flat[0][2]
    floatx = keras.config.floatx()
    wrapper = (type(loss).__name__, type(loss).__module__)  # Keras's wrapper of a loss function
    if (path != () or weight is not None
            or wrapper != ("LossFunctionWrapper", "keras.src.losses.losses")
            or getattr(loss, "fn", None) is not keras.losses.mean_squared_error or loss._fn_kwargs
            or loss.reduction != "sum_over_batch_size" or loss.dtype != floatx
            or compiled.dtype != floatx):
        return None
    dtype = getattr(torch, floatx)

    def total(y, y_pred, sample_weight):
        if not (isinstance(y, torch.Tensor) and isinstance(y_pred, torch.Tensor)
                and y_pred.dtype == dtype and y.dtype.is_floating_point
                and getattr(y_pred, "_keras_mask", None) is None):
            return None
        if sample_weight is not None and not isinstance(sample_weight, torch.Tensor):
            return None
        # LossFunctionWrapper.call, then losses.mean_squared_error
        y_true, y_hat = _same_rank(y, y_pred)
        y_true, y_hat = _same_rank(y_true.to(dtype), y_hat)
        values = torch.mean(torch.square(y_true - y_hat), (-1,))
        # losses.loss.reduce_weighted_values, reduce_values ("sum_over_batch_size")
        if sample_weight is not None:
            values, sample_weight = _same_rank(values, sample_weight.to(dtype))
            values = values * sample_weight
        if values.ndim == 0 or tuple(values.shape) == (0,):
            value = values
        elif values.numel() == 0:
            value = torch.sum(values)
            divisor = torch.tensor(0, dtype=torch.int32).to(dtype)
            value = torch.where(divisor == 0, 0,
                                torch.divide(value, torch.where(divisor == 0, 1.0, divisor)))
        else:  # Keras's `where(divisor == 0, ...)`s select the quotient: the same bits
            value = torch.divide(torch.sum(values), _divisor(values.numel(), dtype))
        # Trainer.compute_loss: plus each of model.losses, summed
        extras = model.losses
        if not extras:
            return value
        losses = [value] + [torch.sum(extra if extra.dtype.is_floating_point
                                      else extra.to(dtype)) for extra in extras]
        return torch.sum(torch.stack(losses))

    return total


@functools.lru_cache(maxsize=16)
def _divisor(count, dtype):
    """Keras's divisor of a `sum_over_batch_size` reduction, `int32 -> dtype`, as it makes
    it (a CPU scalar tensor), made once per count (never written: used as an operand)."""
    return torch.tensor(count, dtype=torch.int32).to(dtype)
