"""Training-step time before and after a grid update, per backend.

    python benchmarks/grid_paths.py [--backends tensorflow,jax,torch]

A fresh KAN has uniform knots, where KANDense uses a closed-form basis. After
`keras_kan.update_grids` (pykan's `update_grid`) the knots follow the data
and the layer switches to its general path (Cox–de Boor on any knots). This prints
`model.train_on_batch` time (Adam, compiled as `model.fit` compiles it)
for both, and their ratio, for the `[64, 64, 64, 1]` G=20 and
`[784, 64, 10]` G=5 configurations of `compare.py`. Repeats are interleaved.
"""

import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

CONFIGS = [([64, 64, 64, 1], 4096, 20), ([784, 64, 10], 1024, 5)]


def child(backend):
    import numpy as np

    from keras_kan import KAN, update_grids

    result = {"backend": backend, "configs": {}}
    for width, batch, grid in CONFIGS:
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (batch, width[0])).astype("float32")
        y = rng.normal(size=(batch, width[-1])).astype("float32")
        fns = {}
        for kind in ("uniform", "data"):
            model = KAN(width, grid_size=grid, seed=0)
            if kind == "data":
                update_grids(model, x)
            assert model.layers[0].uniform_grid == (kind == "uniform")
            model.compile(optimizer="adam", loss="mse", jit_compile=backend != "torch")
            model.train_on_batch(x, y)
            fns[kind] = functools.partial(model.train_on_batch, x, y)
        times = _bench.interleaved(fns, 5, 0.1)
        result["configs"][str(width)] = {k: _bench.median(v) for k, v in times.items()}
        _bench.log(f"[{backend}] {width}: " + ", ".join(
            f"{k} {_bench.median(v) * 1e3:.1f} ms" for k, v in times.items()))
    return result


def report(results):
    header = ["config", "backend", "uniform grid ms", "after a grid update ms", "ratio"]
    rows = []
    for width, batch, grid in CONFIGS:
        for backend, res in results.items():
            entry = res.get("configs", {}).get(str(width))
            if not entry:
                rows.append([f"{width} B={batch} G={grid}", backend, "—", "—",
                             res.get("error", "—")])
                continue
            rows.append([f"{width} B={batch} G={grid}", _bench.SHORT[backend],
                         _bench.fmt_ms(entry["uniform"]), _bench.fmt_ms(entry["data"]),
                         f"{entry['data'] / entry['uniform']:.2f}×"])
    print(_bench.markdown_table(header, rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(_bench.BACKENDS))
    args = parser.parse_args()
    if args.backend:
        _bench.emit(child(args.backend))
        return 0
    report(_bench.run_children(os.path.abspath(__file__), args.backends.split(","), [],
                               timeout=900))
    return 0


if __name__ == "__main__":
    sys.exit(main())
