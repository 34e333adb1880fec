"""Taylor-mode ("jet") forward pass: input derivatives of KAN models in closed form.

`keras_kan.autodiff` needs, for every row `b` and input direction `d`,
`du/dx_d` and `d2u/dx_d^2`. Nested reverse-mode autodiff gets them with one
backward pass per derivative, through every op of the forward pass (the
spline recursion included), and differentiating that again for the weight
gradient. A chain of KAN layers has a cheaper exact form: carry, next to
each node's value, its slopes and curvatures in every input direction
through the layers, a `Jet`:

    value (B, n),   slopes (B, D, n) = dz/dx_d,   curvatures (B, D, n) = d2z/dx_d^2.

For `KANDense`, `y_j = sum_i phi_ij(z_i)` gives, by the chain rule,

    dy_j  = sum_i phi'_ij(z_i) dz_i,
    d2y_j = sum_i phi''_ij(z_i) dz_i^2 + phi'_ij(z_i) d2z_i,

where `phi'` and `phi''` are the spline's derivative bases (closed forms of
the same recursion, `splines.bspline_derivative_bases`) times the layer's
effective kernel, plus the base activation's derivatives (`silu'`, `silu''`,
...) times the base kernel, plus the symbolic edges' `c a f'(a z + b)` and
`c a^2 f''(a z + b)`. All of it is one product of stacked features
`(B, 1 + 2D, K, n)` with the kernel, written in `keras.ops`: the result is
differentiable with respect to the weights on every backend and traces inside
`jax.jit`, `tf.function` and PyTorch autograd. Its cost is about `1 + 2D`
forward passes of the layers, with no backward pass.

Which functions it applies to (`supports`): a built `keras.Sequential`, a
functional `keras.Model` that is a chain (one input, each layer fed by the
previous one), or a single layer, whose every layer has a rule in the
registry, ending in one unit. Anything else (another layer type, a graph that
branches, a lambda around a model, a base activation without a known
derivative) is not supported, and `autodiff` falls back to nested autodiff
(`keras_kan.backend.input_derivatives`).

Rules (`register_rule(layer_class, rule)`): `rule(layer, jet) -> Jet` maps
the jet of a layer's input `(B, n)` to the jet of its output `(B, m)`, with
`jet.curvatures` None when only first derivatives are asked for (then the
rule returns None curvatures too); the rows are independent. A rule may
return `NotImplemented` when it cannot handle this layer (the whole call
falls back). Rules are looked up by the layer's exact class: a subclass that
changes `call` registers its own. `elementwise`, `product` and
`function_derivatives` are the pieces a rule usually needs.
"""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_kan import backend as kan_backend
from keras_kan import edges, splines
from keras_kan.layers import KANDense

__all__ = [
    "Jet",
    "register_rule",
    "rule_for",
    "supports",
    "derivatives",
    "seed",
    "elementwise",
    "product",
    "function_derivatives",
    "activation_derivatives",
]

_HALF_DTYPES = ("float16", "bfloat16")


class Jet(NamedTuple):
    """A node's value and its first two derivatives in each of `D` input directions.

    Attributes:
        value: `(B, n)`.
        slopes: `(B, D, n)`, `slopes[b, d, i] = d value[b, i] / d x[b, d]`.
        curvatures: `(B, D, n)`, `d^2 value[b, i] / d x[b, d]^2`, or None
            (first derivatives only).
    """

    value: object
    slopes: object
    curvatures: object


_RULES = {}


def register_rule(layer_class, rule):
    """Register `rule(layer, jet) -> Jet` (or `NotImplemented`) for `layer_class`.

    See the module docstring for the contract. Registering again replaces the rule.
    """
    if not isinstance(layer_class, type) or not callable(rule):
        raise TypeError("keras_kan.jet.register_rule: expected a layer class and a callable "
                        f"rule, got {layer_class!r} and {rule!r}.")
    _RULES[layer_class] = rule


def rule_for(layer):
    """The rule registered for `type(layer)` exactly, or None."""
    return _RULES.get(type(layer))


# ------------------------------------------------------------------- pieces
def seed(x, second=True):
    """The jet of the inputs `x (B, D)`: slopes the identity, curvatures 0."""
    dim = int(x.shape[-1])
    eye = ops.convert_to_tensor(np.eye(dim), x.dtype)
    zeros = ops.expand_dims(ops.zeros_like(x), 1)  # (B, 1, D): keeps a traced batch
    return Jet(x, zeros + eye, zeros + ops.zeros_like(eye) if second else None)


def _cast(jet, dtype):
    return Jet(*(None if t is None else ops.cast(t, dtype) for t in jet))


def elementwise(jet, f, f1, f2):
    """The jet of `g(z)` for an elementwise `g`, given `f = g(z)`, `f1 = g'(z)`,
    `f2 = g''(z)` (each `(B, n)`; `f2` unused without curvatures)."""
    slopes = ops.expand_dims(f1, 1) * jet.slopes
    curv = None
    if jet.curvatures is not None:
        curv = (ops.expand_dims(f2, 1) * jet.slopes * jet.slopes
                + ops.expand_dims(f1, 1) * jet.curvatures)
    return Jet(f, slopes, curv)


def product(a, b):
    """The jet of `a * b` (elementwise, same shapes): `(ab)' = a'b + ab'`,
    `(ab)'' = a''b + 2a'b' + ab''`."""
    va, vb = ops.expand_dims(a.value, 1), ops.expand_dims(b.value, 1)
    slopes = a.slopes * vb + va * b.slopes
    curv = None
    if a.curvatures is not None and b.curvatures is not None:
        curv = a.curvatures * vb + 2.0 * a.slopes * b.slopes + va * b.curvatures
    return Jet(a.value * b.value, slopes, curv)


def function_derivatives(fn, u, second=True):
    """`(fn(u), fn'(u), fn''(u) or None)` of an elementwise `fn` at `u (B, E)`.

    By nested autodiff of `fn` alone on `u` flattened to one column (one
    backward pass per order, over an elementwise function: cheap), for
    functions without a registered closed form (symbolic edge functions,
    `keras_kan.add_symbolic`). Differentiable with respect to whatever `u`
    depends on.
    """
    width = int(u.shape[-1])
    flat = ops.reshape(u, (-1, 1))
    g, h = kan_backend.input_derivatives(lambda t: ops.reshape(fn(t), (-1,)), flat, second)
    return (fn(u), ops.reshape(g, (-1, width)),
            None if h is None else ops.reshape(h, (-1, width)))


def _silu(z):
    s = ops.sigmoid(z)
    return z * s, s * (1.0 + z * (1.0 - s)), s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))


def _tanh(z):
    t = ops.tanh(z)
    d = 1.0 - t * t
    return t, d, -2.0 * t * d


def _sigmoid(z):
    s = ops.sigmoid(z)
    d = s * (1.0 - s)
    return s, d, d * (1.0 - 2.0 * s)


def _softplus(z):
    s = ops.sigmoid(z)
    return ops.softplus(z), s, s * (1.0 - s)


def _relu(z):
    return ops.relu(z), ops.cast(z > 0, z.dtype), ops.zeros_like(z)


def _linear(z):
    return z, ops.ones_like(z), ops.zeros_like(z)


#: Closed forms `z -> (f, f', f'')` of the usual base activations, matched by identity.
_ACTIVATIONS = {
    keras.activations.silu: _silu,
    keras.activations.tanh: _tanh,
    keras.activations.sigmoid: _sigmoid,
    keras.activations.softplus: _softplus,
    keras.activations.relu: _relu,
    keras.activations.linear: _linear,
}


def activation_derivatives(activation):
    """`z -> (f(z), f'(z), f''(z))` for a known Keras activation, else None."""
    return _ACTIVATIONS.get(activation)


# --------------------------------------------------------------- KANDense
def _work_dtype(layer):
    """The dtype the layer's basis is computed in (float32 under half precision)."""
    dtype = layer.compute_dtype
    return "float32" if dtype in _HALF_DTYPES else dtype


def _stack(value, slopes, curvatures):
    """`(B, S, ...)`, `S = 1 + D` or `1 + 2D`: value, slopes, curvatures on axis 1."""
    parts = [ops.expand_dims(value, 1), slopes]
    if curvatures is not None:
        parts.append(curvatures)
    return ops.concatenate(parts, axis=1)


def _times(features, kernel):
    """`features (B, S, J) @ kernel (J, m)` -> `(B, S, m)` (batch axes spelled out)."""
    width, m = int(kernel.shape[0]), int(kernel.shape[1])
    flat = ops.einsum("bj,jk->bk", ops.reshape(features, (-1, width)), kernel)
    return ops.reshape(flat, (-1, int(features.shape[1]), m))


def kan_dense_rule(layer, jet):
    """The jet rule of `KANDense`: `(B, n)` in, `(B, m)` out (see the module docstring).

    Spline part: the bases `B, B', B''` `(B, K, n)` on the layer's knots (any
    knots: the recursion, `splines.bspline_derivative_bases`), stacked as
    `[B, B' dz, B'' dz^2 + B' d2z]` `(B, S, K, n)` and multiplied by the
    effective spline kernel `mask * w_s * c` `(K n, m)`; base part the same with
    `b, b', b''` `(B, n)` and `mask * w_b`; symbolic edges
    `mask (c f(a z + b) + d)` through `function_derivatives`.
    """
    base = None
    if layer.use_base:
        base = activation_derivatives(layer.base_activation)
        if base is None:
            return NotImplemented
    dtype = _work_dtype(layer)
    z, dz, d2z = _cast(jet, dtype)
    second = d2z is not None
    n, m, k = layer.input_dim, layer.units, layer.spline_order
    snap = edges.params(layer, edges.OPS, dtype=dtype)
    bases = splines.bspline_derivative_bases(z, snap.knots, k, 2 if second else 1)  # (B, K, n)
    slope = ops.expand_dims(bases[1], 1)  # (B, 1, K, n)
    curv = None
    if second:
        curv = (ops.expand_dims(bases[2], 1) * ops.expand_dims(dz * dz, 2)
                + slope * ops.expand_dims(d2z, 2))
    feats = _stack(bases[0], slope * ops.expand_dims(dz, 2), curv)  # (B, S, K, n)
    spline_kernel = ops.reshape(ops.transpose(snap.spline_kernel, (1, 0, 2)), (-1, m))
    out = _times(ops.reshape(feats, (-1, int(feats.shape[1]), layer.num_basis * n)),
                 spline_kernel)  # (B, S, m)
    if base is not None:
        b = elementwise(Jet(None, dz, d2z), *base(z))
        out = out + _times(_stack(b.value, b.slopes, b.curvatures), snap.base_kernel)
    for group in snap.symbolic:
        out = out + _symbolic_jet(group, z, dz, d2z, m)
    dim = int(dz.shape[1])
    value = out[:, 0]
    if snap.bias is not None:
        value = value + ops.cast(snap.bias, dtype)
    return Jet(value, out[:, 1:1 + dim], out[:, 1 + dim:] if second else None)


def _symbolic_jet(group, z, dz, d2z, m):
    """`(B, S, m)`: one symbolic group's `mask (c f(a z + b) + d)` and its derivatives."""
    rows = ops.convert_to_tensor(group.rows, "int32")
    mask, a, b, c, d = (ops.cast(p, z.dtype) for p in
                        (group.mask, group.a, group.b, group.c, group.d))
    ze = ops.take(z, rows, axis=1)  # (B, E)
    f, f1, f2 = function_derivatives(group.fn, a * ze + b, d2z is not None)
    scale = mask * c
    inner = Jet(None, ops.take(dz, rows, axis=2),
                None if d2z is None else ops.take(d2z, rows, axis=2))
    edge = elementwise(inner, mask * (c * f + d), scale * a * f1,
                       None if f2 is None else scale * a * a * f2)
    onehot = ops.convert_to_tensor(group.onehot, z.dtype)
    return _times(_stack(edge.value, edge.slopes, edge.curvatures), onehot)


register_rule(KANDense, kan_dense_rule)
register_rule(keras.layers.InputLayer, lambda layer, jet: jet)


# ---------------------------------------------------------------- dispatch
def _keras_class(model):
    """True for Keras's own model classes (a user subclass may change `call`)."""
    return type(model).__module__.startswith("keras.")


def _chain(fn):
    """The layers of `fn` in call order, nested chains flattened, or None when `fn`
    is not a chain of layers that all have rules."""
    if isinstance(fn, keras.Model):
        if not _keras_class(fn) or not fn.built:
            return None
        layers = list(fn.layers)
        if not isinstance(fn, keras.Sequential) and not _is_functional_chain(fn, layers):
            return None
        out = []
        for layer in layers:
            inner = _chain(layer)
            if inner is None:
                return None
            out.extend(inner)
        return out
    if isinstance(fn, keras.layers.Layer) and fn.built and rule_for(fn) is not None:
        return [fn]
    return None


def _is_functional_chain(model, layers):
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
        if len(inputs) != 1 or len(outputs) != 1:
            return False
        body = [layer for layer in layers if not isinstance(layer, keras.layers.InputLayer)]
        if not body or len(body) != len(layers) - 1:
            return False
        previous = inputs[0]
        for layer in body:  # `input`/`output` raise for a layer called more than once
            if layer.input is not previous:
                return False
            previous = layer.output
        return previous is outputs[0]
    except (AttributeError, ValueError, TypeError):
        return False


def supports(fn):
    """Whether `derivatives(fn, ...)` uses the jet (else `autodiff` uses nested autodiff)."""
    return _chain(fn) is not None


def derivatives(fn, x, second=True):
    """`(gradient (B, D), hessian diagonal (B, D) or None)` of `fn` at `x (B, D)`
    by the jet, or None when `fn` is not supported (see `supports`) or does not
    end in one unit. Results in `x`'s dtype."""
    layers = _chain(fn)
    if layers is None:
        return None
    jet = seed(x, second)
    for layer in layers:
        jet = rule_for(layer)(layer, jet)
        if jet is NotImplemented:
            return None
    if len(jet.value.shape) != 2 or jet.value.shape[-1] != 1:
        return None
    grad = ops.cast(jet.slopes[..., 0], x.dtype)
    hess = None if jet.curvatures is None else ops.cast(jet.curvatures[..., 0], x.dtype)
    return grad, hess
