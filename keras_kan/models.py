"""`KAN(width=...)`: a pykan-style constructor for a Sequential stack of KANDense."""

import keras
import numpy as np

from keras_kan.layers import KANDense
from keras_kan.validation import check_int

__all__ = ["KAN"]


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
