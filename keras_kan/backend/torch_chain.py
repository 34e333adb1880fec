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
"""

import keras
import torch

__all__ = ["ENABLED", "layer_chain", "forward"]

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
        h = layer.call(h, training=training)
    return h
