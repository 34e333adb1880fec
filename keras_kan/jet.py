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
the same recursion, `splines.bspline_derivative_bases`, through the backend's
`spline_derivative_bases`) times the layer's
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
from keras_kan.layers import KANDense
from keras_kan.products import AFFINE_NAMES, MultNodes, mult_groups

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


def _chain_rule(dz, d2z, phi1, phi2):
    """Slopes and curvatures `(B, D, m)` of `y_j = sum_i phi_ij(z_i)` from the inputs'
    `dz, d2z (B, D, n)` and the edges' `phi1 = phi'(z), phi2 = phi''(z)` `(B, n, m)`.

    (Measured on the Poisson mesh, `[2, 2, 1]`: as einsums this is 1.6x faster on
    JAX than broadcast products summed over `n`, and within noise on TF and PyTorch.)
    """
    slopes = ops.einsum("bdn,bnm->bdm", dz, phi1)
    if d2z is None:
        return slopes, None
    return slopes, (ops.einsum("bdn,bnm->bdm", dz * dz, phi2)
                    + ops.einsum("bdn,bnm->bdm", d2z, phi1))


def kan_dense_rule(layer, jet):
    """The jet rule of `KANDense`: `(B, n)` in, `(B, m)` out (see the module docstring).

    Per edge, `phi'(z)` and `phi''(z)` `(B, n, m)`: the derivative bases
    `B', B''` `(B, n, K)` on the layer's knots (`backend.spline_derivative_bases`, i.e.
    `splines.bspline_derivative_bases`: the closed form on even knots, the recursion on
    any others; XLA-marked in large TensorFlow graphs) times the
    effective spline kernel `mask * w_s * c` `(n, K, m)`, plus `b'(z), b''(z)`
    times `mask * w_b`, plus each symbolic edge's `mask c a f'(a z + b)` and
    `mask c a^2 f''(a z + b)` (`function_derivatives`); then the chain rule
    over the inputs. The value is `B @ W_s + b(z) @ W_b` (+ symbolic, bias).
    """
    base = None
    if layer.use_base:
        base = activation_derivatives(layer.base_activation)
        if base is None:
            return NotImplemented
    dtype = _work_dtype(layer)
    z, dz, d2z = _cast(jet, dtype)
    second = d2z is not None
    n, m = layer.input_dim, layer.units
    snap = layer.edge_params(z, dtype=dtype)  # knots behind the layer's grid-state checks
    bases = kan_backend.spline_derivative_bases(z, snap.knots, layer.spline_order,
                                                2 if second else 1, snap.uniform)  # (B, n, K)
    kernel = snap.spline_kernel  # (n, K, m)
    value = ops.einsum("bj,jk->bk", ops.reshape(bases[0], (-1, n * layer.num_basis)),
                       ops.reshape(kernel, (-1, m)))
    phi = [ops.einsum("bnk,nkm->bnm", b, kernel) for b in bases[1:]]  # phi', phi''
    if base is not None:
        f = base(z)  # b, b', b'' (B, n)
        value = value + ops.einsum("bn,nm->bm", f[0], snap.base_kernel)
        phi = [p + ops.expand_dims(g, -1) * snap.base_kernel for p, g in zip(phi, f[1:])]
    for group in snap.symbolic:
        value, phi = _add_symbolic(group, z, value, phi, n, m)
    if snap.bias is not None:
        value = value + ops.cast(snap.bias, dtype)
    slopes, curvatures = _chain_rule(dz, d2z, phi[0], phi[1] if second else None)
    return Jet(value, slopes, curvatures)


def _add_symbolic(group, z, value, phi, n, m):
    """One symbolic group's `mask (c f(a z + b) + d)` added to the value `(B, m)` and
    its derivatives to the edges' `phi', phi''` `(B, n, m)`."""
    rows = ops.convert_to_tensor(group.rows, "int32")
    mask, a, b, c, d = (ops.cast(p, z.dtype) for p in
                        (group.mask, group.a, group.b, group.c, group.d))
    f, f1, f2 = function_derivatives(group.fn, a * ops.take(z, rows, axis=1) + b,
                                     len(phi) > 1)  # (B, E)
    onehot = ops.convert_to_tensor(group.onehot, z.dtype)  # (E, m)
    scatter = np.zeros((len(group.flat), n * m))  # (E, n m): edge -> its (i, j)
    scatter[np.arange(len(group.flat)), group.flat] = 1.0
    scatter = ops.convert_to_tensor(scatter, z.dtype)
    value = value + ops.einsum("be,em->bm", mask * (c * f + d), onehot)
    parts = [mask * c * a * f1] + ([mask * c * a * a * f2] if len(phi) > 1 else [])
    phi = [p + ops.reshape(ops.einsum("be,ej->bj", q, scatter), (-1, n, m))
           for p, q in zip(phi, parts)]
    return value, phi


def _affine(jet, scale, bias):
    """The jet of `scale * z + bias` (elementwise, `(n,)` vectors)."""
    curv = None if jet.curvatures is None else jet.curvatures * scale
    return Jet(jet.value * scale + bias, jet.slopes * scale, curv)


def _columns(jet, start, stop):
    """The jet of `z[..., start:stop]`."""
    return Jet(*(None if t is None else t[..., start:stop] for t in jet))


def mult_nodes_rule(layer, jet):
    """The jet rule of `MultNodes`: `(B, n_sub)` in, `(B, n_sum + n_mult)` out.

    The subnode affine, the sum subnodes passed through, each mult node the
    `product` of its group's jets (any arity), then the node affine (see
    `keras_kan.products`).
    """
    w = {name: ops.cast(getattr(layer, name), jet.value.dtype) for name in AFFINE_NAMES}
    s = _affine(jet, w["subnode_scale"], w["subnode_bias"])
    parts = [_columns(s, 0, layer.n_sum)] if layer.n_sum else []
    for group in mult_groups(layer.n_sum, layer.arity):
        node = _columns(s, group.start, group.start + 1)
        for q in group[1:]:
            node = product(node, _columns(s, q, q + 1))
        parts.append(node)
    joined = Jet(*(None if parts[0][i] is None else
                   ops.concatenate([p[i] for p in parts], axis=-1) for i in range(3)))
    return _affine(joined, w["node_scale"], w["node_bias"])


register_rule(KANDense, kan_dense_rule)
register_rule(MultNodes, mult_nodes_rule)
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
