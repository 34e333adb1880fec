"""The paper's sparsity penalty on edge activations, as a Keras object.

pykan's `lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff` map to
`KANRegularizer(l1=lamb*lamb_l1, entropy=lamb*lamb_entropy,
coef=lamb*lamb_coef, coef_diff=lamb*lamb_coefdiff)`. pykan's defaults are
`lamb_l1=1, lamb_entropy=2`; the KAN paper's canonical run (`lamb=0.01,
lamb_entropy=10`) is `KANRegularizer(l1=0.01, entropy=0.1)`.
"""

import math

import keras
from keras import ops

from keras_kan.validation import check_real

__all__ = ["KANRegularizer", "get"]

def _entropy(p, axis):
    return -ops.sum(p * ops.log(p + 1e-4), axis=axis) / math.log(2.0)


@keras.saving.register_keras_serializable(package="keras_kan")
class KANRegularizer:
    """L1 + entropy (+ coefficient) penalty of a KAN layer, as in pykan 0.2.8.

    With edge scores `A` (see `edge_scores`) laid out `(in, out)`:

    * `L1 = sum A`;
    * `S_row`: for each output, the entropy of `A / (sum over inputs + 1)`,
      averaged over outputs; `S_col` likewise per input over outputs;
    * `coef = sum_{i,p} mean_j |c_ipj|`, `coef_diff` the same on `diff_p c`.

    `penalty = l1*L1 + entropy*(S_row + S_col) + coef*coef + coef_diff*coef_diff`.
    A `KANDense` with this regularizer adds the penalty with `add_loss` on
    training calls (not divided by the batch size, as pykan).

    Args:
        l1: strength of the L1 term (pykan `lamb * lamb_l1`).
        entropy: strength of the entropy terms (pykan `lamb * lamb_entropy`).
        coef: strength of the coefficient L1 (pykan `lamb * lamb_coef`).
        coef_diff: strength of the coefficient-difference L1
            (pykan `lamb * lamb_coefdiff`).
    """

    def __init__(self, l1=0.0, entropy=0.0, coef=0.0, coef_diff=0.0):
        self.l1 = check_real("l1", l1, 0.0)
        self.entropy = check_real("entropy", entropy, 0.0)
        self.coef = check_real("coef", coef, 0.0)
        self.coef_diff = check_real("coef_diff", coef_diff, 0.0)

    @property
    def needs_scores(self):
        """Whether the penalty depends on edge activations (L1 or entropy)."""
        return self.l1 > 0 or self.entropy > 0

    def __call__(self, scores, coefficients):
        """Penalty value.

        Args:
            scores: `(n, m)` edge scores (ignored when `needs_scores` is False;
                may be None then).
            coefficients: `(n, K, m)` spline coefficients.

        Returns:
            scalar tensor.
        """
        total = ops.cast(0.0, coefficients.dtype)
        if self.needs_scores:
            if self.l1:
                total = total + self.l1 * ops.sum(scores)
            if self.entropy:
                p_row = scores / (ops.sum(scores, axis=0, keepdims=True) + 1.0)
                p_col = scores / (ops.sum(scores, axis=1, keepdims=True) + 1.0)
                s_row = ops.mean(_entropy(p_row, axis=0))
                s_col = ops.mean(_entropy(p_col, axis=1))
                total = total + self.entropy * (s_row + s_col)
        if self.coef:
            total = total + self.coef * ops.sum(ops.mean(ops.abs(coefficients), axis=-1))
        if self.coef_diff:
            diff = coefficients[:, 1:, :] - coefficients[:, :-1, :]
            total = total + self.coef_diff * ops.sum(ops.mean(ops.abs(diff), axis=-1))
        return total

    def get_config(self):
        return {"l1": self.l1, "entropy": self.entropy, "coef": self.coef,
                "coef_diff": self.coef_diff}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (f"KANRegularizer(l1={self.l1}, entropy={self.entropy}, coef={self.coef}, "
                f"coef_diff={self.coef_diff})")


def get(identifier):
    """A `KANRegularizer` from itself, its config dict, or None (as `keras.regularizers.get`).

    Raises:
        ValueError: anything else, naming the value received.
    """
    if isinstance(identifier, dict):
        identifier = keras.saving.deserialize_keras_object(identifier)
    if identifier is not None and not isinstance(identifier, KANRegularizer):
        raise ValueError(
            "Received an invalid value for argument `regularizer`: expected a "
            f"keras_kan.KANRegularizer or None, got {identifier!r}."
        )
    return identifier
