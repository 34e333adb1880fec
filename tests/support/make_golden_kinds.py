"""Write saved_models/kinds/<kind>.keras and <kind>.npz: one small file per kind of model.

The kinds are the models keras_kan makes besides a fresh one (see
make_golden.py): after `update_grids` (non-uniform knots), after `refine`,
after `prune`, with a regularizer, with `use_bias`, with a `mixed_float16`
policy, with symbolic edges (added later: `python tests/make_golden_kinds.py symbolic`
writes only that kind).

Run ONCE (the committed files are what older versions wrote; every test run on
every backend loads them), and only again when a saved format changes on
purpose, together with a version bump (see README, "Guarantees"):

    KERAS_BACKEND=tensorflow python tests/support/make_golden_kinds.py
"""

import os
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_kan import KAN, KANRegularizer, prune, refine, update_grids  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "saved_models",
                    "kinds")


def _randomize(model, seed=0):
    """Non-trivial weights (deterministic), so every term shows in the outputs."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for v in (layer.spline_kernel, layer.base_kernel, layer.spline_scale, layer.bias):
            if v is not None:
                v.assign(rng.normal(size=v.shape).astype(v.dtype))
    return model


def inputs(count=12):
    """Samples in and beyond [-1, 1], skewed so that grid updates give uneven knots."""
    u = np.random.default_rng(1).uniform(-1.0, 1.0, size=(count, 2))
    return (1.3 * np.sign(u) * np.abs(u) ** 2).astype("float32")


def after_update_grids():
    model = _randomize(KAN([2, 3, 1], grid_size=3, seed=0))
    update_grids(model, inputs(64))
    return model


def after_refine():
    return refine(_randomize(KAN([2, 3, 1], grid_size=3, seed=0)), 7, inputs(64))


def after_prune():
    model = _randomize(KAN([2, 3, 1], grid_size=3, seed=0))
    first = model.layers[0]
    for v in (first.spline_scale, first.base_kernel):  # hidden node 1 is dead
        value = keras.ops.convert_to_numpy(v).copy()
        value[:, 1] = 0.0
        v.assign(value)
    return prune(model, inputs(64), verbose=False)


def with_regularizer():
    return _randomize(KAN([2, 2, 1], grid_size=3, seed=0, regularizer=KANRegularizer(
        l1=0.01, entropy=0.1, coef=0.001, coef_diff=0.002)))


def with_bias():
    return _randomize(KAN([2, 2, 1], grid_size=3, seed=0, use_bias=True))


def mixed_precision():
    return _randomize(KAN([2, 2, 1], grid_size=3, seed=0, dtype="mixed_float16"))


def with_symbolic_edges():
    """Symbolic edges beside numeric ones: one symbolic only, one both, on two layers."""
    from keras_kan import symbolic_edges

    model = _randomize(KAN([2, 2, 1], grid_size=3, seed=0))
    first, second = model.layers
    symbolic_edges.set_edge(first, 0, 0, "cos", (3.0, 0.5, 0.8, -0.1), mode="symbolic")
    symbolic_edges.set_edge(first, 1, 1, "x^2", (1.2, -0.3, 0.6, 0.2), mode="both")
    symbolic_edges.set_edge(second, 0, 0, "exp", (0.7, 0.1, 0.5, 0.0), mode="symbolic")
    return model


def with_symbolic_alias():
    """Every kind of edge: purely symbolic, numeric and symbolic ("both"), numeric; names
    include an alias (`x^0.5`) so that files naming it keep loading."""
    from keras_kan import symbolic

    model = _randomize(KAN([2, 2, 1], grid_size=3, seed=0))
    for layer, i, j, name, params, mode in [
            (0, 0, 0, "sin", (2.0, 0.3, 0.7, 0.1), "symbolic"),
            (0, 1, 0, "x^2", (1.0, -0.2, 0.5, -0.1), "both"),
            (0, 0, 1, "x^0.5", (1.0, 1.5, 0.8, 0.0), "symbolic"),
            (1, 0, 0, "exp", (0.5, 0.0, 1.2, -0.3), "symbolic"),
            (1, 1, 0, "1/x", (1.0, 3.0, 0.4, 0.0), "both")]:
        symbolic.fix_symbolic(model, layer, i, j, name, params=params, mode=mode,
                              verbose=False)
    return model


def deflate(path):
    """Re-pack the `.keras` zip with compression (Keras stores it uncompressed): the same
    members, a quarter of the size; Keras reads either."""
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)


KINDS = {
    "update_grids": after_update_grids,
    "refine": after_refine,
    "prune": after_prune,
    "regularizer": with_regularizer,
    "use_bias": with_bias,
    "mixed_float16": mixed_precision,
    "symbolic": with_symbolic_edges,  # added 2026-12-03 (keras_kan 0.1.0)
    "symbolic_alias": with_symbolic_alias,  # added with the one symbolic registry (issue 20)
}

if __name__ == "__main__":
    import sys

    os.makedirs(ROOT, exist_ok=True)
    only = sys.argv[1:] or list(KINDS)  # golden files are written once: name new kinds
    for kind, make in KINDS.items():
        if kind not in only:
            continue
        model = make()
        x = inputs()
        y = np.asarray(keras.ops.convert_to_numpy(model(x)), np.float64)
        model.save(os.path.join(ROOT, f"{kind}.keras"))
        deflate(os.path.join(ROOT, f"{kind}.keras"))
        np.savez(os.path.join(ROOT, f"{kind}.npz"), x=x, y=y)
        print("wrote", kind, os.path.getsize(os.path.join(ROOT, f"{kind}.keras")), "bytes")
