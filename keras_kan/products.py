"""`MultNodes`: pykan 0.2's multiplication nodes (MultKAN) as a Keras layer.

A KAN layer with mult nodes is a `KANDense` onto *subnodes* followed by this
layer, which turns subnodes into *nodes* (pykan 0.2.8, `MultKAN.forward`):

    s = subnode_scale * u + subnode_bias          u: (..., n_sub) subnodes
    z_j = s_j                                   j < n_sum          (sum nodes)
    z_{n_sum + r} = prod_{q in group r} s_q     r < n_mult         (mult nodes)
    y = node_scale * z + node_bias              y: (..., n_sum + n_mult)

Group `r` is `arity[r]` consecutive subnodes after the `n_sum` sum subnodes,
so `n_sub = n_sum + sum(arity)`. The derivative (for closed-form derivative
passes) is `dy_j/du_q = node_scale_j * subnode_scale_q * prod_{q' in group(j),
q' != q} s_q'` for a subnode `q` of mult node `j`, and `node_scale_j *
subnode_scale_j` for a sum node (`j = q < n_sum`); every other entry is 0.

The four affine vectors start at 1 and 0 (pykan's init) and are frozen unless
`affine_trainable=True` (pykan's `affine_trainable`).

The zero-product saddle. A mult node `prod_q u_q` has the gradient
`prod_{q' != q} u_q'` on subnode `q`: it vanishes when the subnodes start
small. `KANDense`'s default init keeps them of order `1/sqrt(n)` (the random
base branch `w_b silu(x)`), and from pykan's init `KAN([2, [0, 1], 1])` on
`x1*x2` moved from the first L-BFGS step on 3 seeds of 3 (RMSE 0.34 -> below
1e-3 in 20 steps). Without a base branch (`use_base=False`) the subnodes are
spline noise of order `0.3/G` and the loss did not move on 2 seeds of 3.
`product_offset=c` starts each mult subnode's bias at `c` and its node's bias
at `-c**a`, so the node starts as `prod_q (c + u_q) - c**a`, a sum of the
subnodes to first order (gradients of order 1): with `c = 1` and
`use_base=False` the loss moved on 3 seeds of 3. It is not the default: from a
sum-like start L-BFGS settled in a basin of sums (RMSE 0.14 after 20 steps on
`x1*x2`, where pykan's init reaches 1e-3). The offsets lose no expressiveness:
edges absorb constants, `(1 + (x1 - 1))(1 + (x2 - 1)) - 1 + 1 = x1*x2`.

Only elementwise products
and static slices are used, so the layer lowers to TFLite builtins and ONNX.
"""

import keras
import numpy as np
from keras import ops

from keras_kan.validation import check_bool, check_int, check_real

__all__ = ["MultNodes", "AFFINE_NAMES", "mult_groups"]

#: The layer's weights, by the names they are saved under.
AFFINE_NAMES = ("subnode_scale", "subnode_bias", "node_scale", "node_bias")


def mult_groups(n_sum, arity):
    """The subnode indices each mult node multiplies: a list of `range`s."""
    groups, start = [], n_sum
    for a in arity:
        groups.append(range(start, start + a))
        start += a
    return groups


def _check_arity(arity):
    if isinstance(arity, (int, np.integer)) and not isinstance(arity, bool):
        raise ValueError("Received an invalid value for argument `arity`: expected a list "
                         f"with one arity per mult node, got the int {arity!r}.")
    if not isinstance(arity, (list, tuple)):
        raise ValueError("Received an invalid value for argument `arity`: expected a list "
                         f"of integers >= 2 (one per mult node), got {arity!r}.")
    return [check_int("arity", a, 2) for a in arity]


@keras.saving.register_keras_serializable(package="keras_kan")
class MultNodes(keras.layers.Layer):
    """Sum and multiplication nodes from subnodes (pykan's MultKAN step).

    Input `(..., n_sum + sum(arity))` subnodes, output `(..., n_sum +
    len(arity))` nodes: the first `n_sum` pass through, each mult node is the
    product of its `arity[r]` consecutive subnodes; an affine map before
    (`subnode_scale`, `subnode_bias`) and after (`node_scale`, `node_bias`).
    See the module docstring for the formula and its derivative.

    ```python
    >>> layer = MultNodes(n_sum=1, arity=[2])     # 3 subnodes -> 2 nodes
    >>> layer(np.array([[1., 2., 3.]])).numpy()   # [[1., 6.]]
    ```

    Args:
        n_sum: the number of sum nodes (>= 0).
        arity: one int >= 2 per mult node (how many subnodes it multiplies).
        affine_trainable: whether the four affine vectors train.
        product_offset: the initial bias of each mult subnode (and minus
            its node's bias); 0 (the default) is pykan's init; 1 keeps a mult
            node off the zero-product saddle when subnodes start small (see the
            module docstring).
    """

    def __init__(self, n_sum, arity, affine_trainable=False, product_offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.n_sum = check_int("n_sum", n_sum, 0)
        self.arity = _check_arity(arity)
        if self.n_sum + len(self.arity) < 1:
            raise ValueError("MultNodes needs at least one node (`n_sum` >= 1 or a "
                             "non-empty `arity`).")
        self.affine_trainable = bool(check_bool("affine_trainable", affine_trainable))
        self.product_offset = check_real("product_offset", product_offset)
        self.n_subnodes = self.n_sum + sum(self.arity)
        self.units = self.n_sum + len(self.arity)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.n_subnodes})

    def build(self, input_shape):
        if input_shape[-1] != self.n_subnodes:
            raise ValueError(
                f"Layer '{self.name}' (MultNodes) expects {self.n_subnodes} subnodes "
                f"(n_sum={self.n_sum} + arity {self.arity}), got input shape {input_shape}.")
        sizes = {"subnode_scale": self.n_subnodes, "subnode_bias": self.n_subnodes,
                 "node_scale": self.units, "node_bias": self.units}
        offset = self.product_offset
        initial = {"subnode_scale": np.ones(self.n_subnodes), "node_scale": np.ones(self.units),
                   "subnode_bias": np.r_[np.zeros(self.n_sum), np.full(sum(self.arity), offset)],
                   "node_bias": np.r_[np.zeros(self.n_sum),
                                      [-offset ** a for a in self.arity]]}
        for name in AFFINE_NAMES:
            value = initial[name].astype(self.dtype)
            setattr(self, name, self.add_weight(
                name=name, shape=(sizes[name],), trainable=self.affine_trainable,
                initializer=lambda shape, dtype=None, value=value: ops.cast(value, dtype)))

    def call(self, inputs):
        s = inputs * self.subnode_scale + self.subnode_bias
        parts = [s[..., :self.n_sum]] if self.n_sum else []
        if self.arity and len(set(self.arity)) == 1:  # one arity: strided slices
            a, stop = self.arity[0], self.n_subnodes
            product = s[..., self.n_sum:stop:a]
            for r in range(1, a):
                product = product * s[..., self.n_sum + r:stop:a]
            parts.append(product)
        else:
            for group in mult_groups(self.n_sum, self.arity):
                product = s[..., group.start:group.start + 1]
                for q in group[1:]:
                    product = product * s[..., q:q + 1]
                parts.append(product)
        z = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        return z * self.node_scale + self.node_bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def affine(self):
        """The four affine vectors as float64 NumPy arrays, by name."""
        return {name: np.asarray(ops.convert_to_numpy(getattr(self, name)), np.float64)
                for name in AFFINE_NAMES}

    def numpy_call(self, u):
        """The forward pass in float64 NumPy: `(N, n_sub)` -> `(N, units)` (for analysis)."""
        w = self.affine()
        s = np.asarray(u, np.float64) * w["subnode_scale"] + w["subnode_bias"]
        z = [s[:, :self.n_sum]] + [np.prod(s[:, list(g)], axis=1, keepdims=True)
                                   for g in mult_groups(self.n_sum, self.arity)]
        return np.concatenate(z, axis=1) * w["node_scale"] + w["node_bias"]

    def node_expressions(self, subnodes, number=float):
        """Node expressions from subnode expressions (sympy or floats).

        `subnodes`: a list of `n_sub` expressions; `number` turns a weight into
        a constant (e.g. `sympy.Float`). Correct for every arity.
        """
        w = {name: [number(v) for v in value] for name, value in self.affine().items()}
        s = [w["subnode_scale"][q] * e + w["subnode_bias"][q] for q, e in enumerate(subnodes)]
        z = list(s[:self.n_sum])
        for group in mult_groups(self.n_sum, self.arity):
            product = s[group.start]
            for q in group[1:]:
                product = product * s[q]
            z.append(product)
        return [w["node_scale"][j] * e + w["node_bias"][j] for j, e in enumerate(z)]

    def get_config(self):
        config = super().get_config()
        config.update({"n_sum": self.n_sum, "arity": list(self.arity),
                       "affine_trainable": self.affine_trainable,
                       "product_offset": self.product_offset})
        return config

    def save_own_variables(self, store):
        for name in AFFINE_NAMES:
            store[name] = ops.convert_to_numpy(getattr(self, name))

    def load_own_variables(self, store):
        """Strict: every affine vector present, each of the config's shape, finite."""
        for name in AFFINE_NAMES:
            if name not in store:
                raise ValueError(f"Layer '{self.name}' (MultNodes): the saved weights have "
                                 f"no '{name}' (found {sorted(store.keys())}).")
            shape, own = tuple(np.shape(store[name])), tuple(getattr(self, name).shape)
            if shape != own:
                raise ValueError(
                    f"Layer '{self.name}' (MultNodes): the saved weight '{name}' has shape "
                    f"{shape}, but the config (n_sum={self.n_sum}, arity={self.arity}) "
                    f"gives {own}; nothing was loaded into this layer.")
            if not np.all(np.isfinite(np.asarray(store[name]))):
                raise ValueError(f"Layer '{self.name}' (MultNodes): saved weight '{name}' "
                                 "contains non-finite values; the file is damaged.")
        for name in AFFINE_NAMES:
            getattr(self, name).assign(np.asarray(store[name]))
