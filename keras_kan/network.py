"""A model's KAN layers as data: which layers, what reaches them, every edge's values.

Shared by `surgery` (grid updates, pruning), `plotting`, `attribution` and
`symbolic`. Edge values and scores come from `keras_kan.edges` in its float64
NumPy form: the numbers are those of the forward pass to float32 rounding, but
no backend code runs, which on JAX would compile anew for every new shape.
"""

import keras
import numpy as np
from keras import ops

from keras_kan import edges
from keras_kan.layers import KANDense
from keras_kan.products import MultNodes
from keras_kan.validation import check_samples, even_rows

__all__ = [
    "kan_layers",
    "feeds",
    "is_plain_chain",
    "node_steps",
    "apply_nodes",
    "model_samples",
    "layer_inputs",
    "chain_inputs",
    "chain_output",
    "edge_values",
    "edge_scores",
    "layer_output",
    "quantile_samples",
]

#: Rows of `x` used for scores and curves by default (an evenly spaced subset).
MAX_SAMPLES = 20000
#: Rows run through a model at once by `layer_inputs`.
CHUNK_ROWS = 2**16
#: Edge values (`N * n * units` of the widest layer) up to which `layer_inputs`
#: evaluates a plain chain in float64 NumPy instead of on the backend.
HOST_ELEMENTS = 2**20


def kan_layers(model, caller="keras_kan"):
    """The model's `KANDense` layers, in `model.layers` order.

    Raises:
        ValueError: `model` is not a `keras.Model` or has no KANDense layer.
    """
    if isinstance(model, KANDense) or not isinstance(model, keras.Model):
        raise ValueError(
            f"{caller} expects a keras.Model containing KANDense layers, got "
            f"{type(model).__name__}."
        )
    layers = [layer for layer in model.layers if isinstance(layer, KANDense)]
    if not layers:
        raise ValueError(f"{caller}: model '{model.name}' has no KANDense layer.")
    return layers


def feeds(model, first, second):
    """Whether `second` takes `first`'s output, and nothing else, as its input.

    In a `Sequential` model the layer order is the graph (`layer.input` can be
    stale on a reloaded Sequential); in a functional model the tensors decide.
    """
    if isinstance(model, keras.Sequential):
        order = list(model.layers)
        return order.index(second) == order.index(first) + 1
    try:
        return second.input is first.output
    except (AttributeError, ValueError):
        return False


def is_plain_chain(model, layers):
    """True when `model` is exactly `input -> KANDense -> ... -> KANDense`, where a
    KANDense may be followed by one `MultNodes` (its subnodes -> nodes)."""
    order = list(model.layers)
    if [layer for layer in order if not isinstance(layer, MultNodes)] != list(layers):
        return False
    if any(isinstance(layer, MultNodes) and (k == 0 or not isinstance(order[k - 1], KANDense))
           for k, layer in enumerate(order)):
        return False
    if not isinstance(model, keras.Sequential):
        try:
            if order[0].input is not model.inputs[0]:
                return False
        except (AttributeError, ValueError, IndexError):
            return False
    return all(feeds(model, a, b) for a, b in zip(order[:-1], order[1:]))


def node_steps(model, layers):
    """For each KANDense of `layers`, the `MultNodes` right after it in `model`, or None.

    In a plain chain (`is_plain_chain`) a KANDense's outputs are subnodes when a
    `MultNodes` follows it, and the next KANDense reads that layer's nodes.
    """
    order = list(model.layers)
    out = []
    for layer in layers:
        k = next((k for k, other in enumerate(order) if other is layer), None)
        after = order[k + 1] if k is not None and k + 1 < len(order) else None
        out.append(after if isinstance(after, MultNodes) else None)
    return out


def apply_nodes(step, values):
    """`values (N, n_sub)` through `step` (a MultNodes, float64 NumPy), or unchanged if None."""
    return values if step is None else step.numpy_call(values)


def model_samples(model, x, min_samples=2, max_samples=MAX_SAMPLES, name="x"):
    """Validate `x` against `model`'s single input -> `(N, n_in)` float64, evenly thinned.

    Args:
        model: a `keras.Model` with exactly one input.
        x: `(N, n_in)` array or tensor.
        min_samples: the least `N` accepted.
        max_samples: at most this many evenly spaced rows are kept.
        name: the argument's name in error messages.
    """
    data = check_samples(name, x, min_samples=min_samples, what="model inputs")
    if not model.built:
        model.build((None, data.shape[1]))
    try:
        inputs = model.inputs
    except AttributeError:
        inputs = None
    if not inputs or len(inputs) != 1:
        raise ValueError(
            f"Model '{model.name}' must have exactly one defined input, it has "
            f"{'none' if not inputs else len(inputs)}."
        )
    features = inputs[0].shape[-1]
    if features is not None and data.shape[1] != features:
        raise ValueError(
            f"Received an invalid value for argument `{name}`: it has {data.shape[1]} "
            f"features but model '{model.name}' expects {features} (got shape {data.shape})."
        )
    return data if data.shape[0] <= max_samples else data[even_rows(data.shape[0], max_samples)]


def layer_inputs(model, x):
    """The activations that reach every `KANDense` of `model` for inputs `x`.

    A plain chain whose edge values on `x` are small (`HOST_ELEMENTS`) is
    evaluated in float64 NumPy (`chain_inputs`): no backend code runs, which on
    JAX would compile every op anew for each new shape (about a second per grid
    update of the canonical run). Any other model runs on the backend up to each
    KANDense, in chunks of `CHUNK_ROWS`.

    Returns:
        list of `(N, n_l)` float64 NumPy arrays, one per KANDense in
        `model.layers` order.
    """
    layers = kan_layers(model)
    widest = max(layer.input_dim * layer.units for layer in layers)
    if len(x) * widest <= HOST_ELEMENTS and is_plain_chain(model, layers):
        return _host_chain(model, layers, x)
    return _backend_inputs(model, layers, x)


def _backend_inputs(model, layers, x):
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    parts = []
    for start in range(0, max(1, len(x)), CHUNK_ROWS):  # bounded memory for many samples
        chunk = x[start:start + CHUNK_ROWS]
        rows = len(chunk)
        if len(x) > CHUNK_ROWS and rows < CHUNK_ROWS:
            # The last chunk is padded to the others' shape: eager JAX compiles every
            # op once per input shape (seconds per new shape).
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], CHUNK_ROWS - rows, axis=0)])
        outs = probe(ops.convert_to_tensor(chunk, dtype=keras.config.floatx()), training=False)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        parts.append([np.asarray(ops.convert_to_numpy(o), np.float64)[:rows].reshape(
            -1, o.shape[-1]) for o in outs])
    return [np.concatenate(chunks) if len(chunks) > 1 else chunks[0] for chunks in zip(*parts)]


def _host_chain(model, layers, data):
    inputs, current = [], np.asarray(data, np.float64)
    for layer, step in zip(layers, node_steps(model, layers)):
        inputs.append(current)
        current = apply_nodes(step, layer_output(layer, edge_values(layer, current)))
    return inputs


def chain_inputs(model, layers, data):
    """Like `layer_inputs`, evaluated in float64 NumPy whenever `model` is a plain chain."""
    if not is_plain_chain(model, layers):
        return _backend_inputs(model, layers, data)
    return _host_chain(model, layers, data)


def chain_output(model, layers, data):
    """The model's output `(N, n_out)` in float64 NumPy when `model` is a plain chain
    (the last KANDense and the `MultNodes` after it, if any); None otherwise."""
    if not is_plain_chain(model, layers):
        return None
    last = layer_output(layers[-1], edge_values(layers[-1], chain_inputs(model, layers,
                                                                         data)[-1]))
    return apply_nodes(node_steps(model, layers)[-1], last)


def edge_values(layer, inputs, include_symbolic=True, weights=None):
    """Every edge's `phi_ij(x_i)` in float64 (`keras_kan.edges`, NumPy form).

    Args:
        layer: a built KANDense.
        inputs: `(N, n)` float64 samples of its input.
        include_symbolic: add the symbolic part of symbolic edges (False:
            the numeric part `edge_mask * phi` only).
        weights: optional arrays by weight name to use instead of the
            layer's (see `keras_kan.edges.params`; nothing is written).

    Returns:
        `(N, n, units)` float64; the sum over axis 1 (plus the bias) is the
        layer output.
    """
    params = edges.params(layer, edges.NUMPY, weights=weights)
    return edges.edge_values(edges.NUMPY, np.asarray(inputs, np.float64), params,
                             symbolic=include_symbolic)


def edge_scores(layer, inputs):
    """pykan's edge scores of `layer` on `(N, n)` samples of its input, float64 `(n, m)`."""
    return edges.edge_scores(edges.NUMPY, inputs, edges.params(layer, edges.NUMPY))


def layer_output(layer, phi):
    """The layer's output `(N, units)` from its edge values `phi` `(N, n, units)`."""
    out = phi.sum(axis=1)
    if layer.bias is not None:
        out = out + np.asarray(ops.convert_to_numpy(layer.bias), np.float64)
    return out


def quantile_samples(inputs, max_points):
    """Each column sorted independently and thinned to `max_points` order statistics.

    `phi_ij` depends on `x_i` alone, so one evaluation on this matrix gives
    every edge's curve, sorted, over the data's own distribution.

    Args:
        inputs: `(N, n)`.
        max_points: the most rows kept.

    Returns:
        `(min(N, max_points), n)`.
    """
    xs = np.sort(inputs, axis=0)
    return xs[even_rows(xs.shape[0], max_points)]
