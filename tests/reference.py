"""An independent float64 NumPy re-derivation of a KANDense forward pass.

The basis comes from scipy's B-spline elements, not from keras_kan, and the edge
functions are summed explicitly edge by edge.
"""

import numpy as np
from scipy.interpolate import BSpline


def silu(x):
    return x / (1.0 + np.exp(-x))


def basis(x, knots, k):
    """(B, n) -> (B, n, L-k-1) from scipy basis elements (0 outside their support)."""
    b, n = x.shape
    n_basis = knots.shape[1] - k - 1
    out = np.zeros((b, n, n_basis))
    for i in range(n):
        for p in range(n_basis):
            element = BSpline.basis_element(knots[i, p : p + k + 2], extrapolate=False)
            out[:, i, p] = np.nan_to_num(element(x[:, i]), nan=0.0)
    return out


def weights(layer):
    return {v.name: np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float64)
            for v in layer.weights}


def edge_functions(layer, x, activation=silu):
    """phi_ij(x_bi): (B, n, m), the docs/design.md formula term by term."""
    import keras

    w = {v.name: np.asarray(keras.ops.convert_to_numpy(v), np.float64) for v in layer.weights}
    x = np.asarray(x, np.float64)
    bas = basis(x, w["grid"], layer.spline_order)
    spline = np.einsum("bnk,nkm->bnm", bas, w["spline_kernel"])
    phi = w["base_kernel"][None] * activation(x)[:, :, None] + w["spline_scale"][None] * spline
    return w["edge_mask"][None] * phi


def forward(layer, x):
    import keras

    y = edge_functions(layer, x).sum(axis=1)
    if layer.use_bias:
        y = y + np.asarray(keras.ops.convert_to_numpy(layer.bias), np.float64)
    return y


def edge_scores(layer, x):
    """pykan's edge_forward_spline_n scores (n, m), the slow way."""
    x = np.asarray(x, np.float64)
    phi = edge_functions(layer, x)
    return phi.std(axis=0, ddof=1) / (x.std(axis=0, ddof=1)[:, None] + 0.1)


def penalty(layer, x, l1=0.0, entropy=0.0, coef=0.0, coef_diff=0.0):
    """pykan 0.2.8 `reg` for one layer, with scores laid out (out, in) as pykan does."""
    import keras

    a = edge_scores(layer, x).T  # (m, n)
    total = l1 * a.sum()
    p_row = a / (a.sum(axis=1, keepdims=True) + 1)
    p_col = a / (a.sum(axis=0, keepdims=True) + 1)
    s_row = -np.mean(np.sum(p_row * np.log2(p_row + 1e-4), axis=1))
    s_col = -np.mean(np.sum(p_col * np.log2(p_col + 1e-4), axis=0))
    total += entropy * (s_row + s_col)
    c = np.asarray(keras.ops.convert_to_numpy(layer.spline_kernel), np.float64)  # (n, K, m)
    c = np.transpose(c, (0, 2, 1))  # pykan layout (n, m, K)
    total += coef * np.sum(np.mean(np.abs(c), axis=1))
    total += coef_diff * np.sum(np.mean(np.abs(np.diff(c, axis=-1)), axis=1))
    return total
