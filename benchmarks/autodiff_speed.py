"""What a physics-informed evaluation costs beside a plain one: jet vs nested autodiff.

    python benchmarks/autodiff_speed.py [--repeats 15] [--backends tensorflow,jax,torch]

On the Poisson mesh of `examples/poisson.py` (51 x 51 = 2601 points, 204
boundary points), per model (`[2, 2, 1]` grid 20 and `[2, 5, 1]` grid 5), one
evaluation of an objective and its weight gradient, compiled as `fit_lbfgs`
compiles it (`keras_kan.backend.objective_value_and_grad_fn`), for

- `pde jet`: `0.01 * mean((lap u - f)^2) + mean(u(boundary)^2)` with the
  Laplacian from `keras_kan.autodiff` on the model (the closed-form jet,
  `keras_kan.jet`);
- `pde nested`: the same loss with the Laplacian of `lambda z: model(z)`, which
  `keras_kan.jet` does not take, so nested autodiff computes it (what every
  model got before the jet);
- `data`: `mean((u - y)^2)` on the mesh plus the same boundary term: a plain
  evaluation on the same points;
- TensorFlow only, `pde jet unmarked`: the jet traced under
  `backend.tensorflow.plain_graphs()`, so its derivative bases
  (`spline_derivative_bases`) are plain graph ops, not an XLA-marked cluster
  (what the jet ran before they were marked).

Each backend runs in its own process; within it the three are timed
interleaved (ratios per repeat). The table shows milliseconds per evaluation
and each PDE evaluation as a multiple of the plain one.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
import _bench  # noqa: E402

CONFIGS = [([2, 2, 1], 20), ([2, 5, 1], 5)]
# How fit_lbfgs compiles the objective on each backend.
LABEL = {"tensorflow": "TF (tf.function)", "jax": "JAX (jit)", "torch": "Torch (eager)"}


def child(backend, repeats):
    import contextlib

    import numpy as np
    import poisson
    from keras import ops

    import keras_kan
    from keras_kan import backend as kan_backend

    mesh, boundary, source = poisson.problem(51)
    target = poisson.exact(mesh).astype("float32")
    tm, tb, ts, ty = (ops.convert_to_tensor(a) for a in (mesh, boundary, source, target))

    def pde(use_jet, plain=False):
        def objective(model):
            fn = model if use_jet else (lambda z: model(z))
            with unmarked() if plain else contextlib.nullcontext():
                residual = keras_kan.autodiff.laplacian(fn, tm) - ts
            return 0.01 * ops.mean(residual**2) + ops.mean(model(tb) ** 2)
        return objective

    def data(model):
        return ops.mean((model(tm) - ty) ** 2) + ops.mean(model(tb) ** 2)

    objectives = {"pde jet": pde(True), "pde nested": pde(False), "data": data}
    if backend == "tensorflow":
        from keras_kan.backend.tensorflow import plain_graphs as unmarked

        objectives["pde jet unmarked"] = pde(True, plain=True)
    result = {"backend": backend, "configs": {}}
    for width, grid in CONFIGS:
        fns, check, models = {}, {}, []
        for name, objective in objectives.items():
            model = keras_kan.KAN(width, grid_size=grid, seed=0)  # one model per compiled fn
            models.append(model)  # the compiled functions hold weak references only
            f = kan_backend.objective_value_and_grad_fn(model, objective)
            check[name] = f(None, None)
            fns[name] = (lambda f=f: f(None, None))
        (vj, gj), (vn, gn) = check["pde jet"], check["pde nested"]
        agree = float(np.max(np.abs(gj - gn)) / max(np.max(np.abs(gn)), 1e-30))
        times = _bench.interleaved(fns, repeats, target_s=0.2)
        entry = {name: _bench.median(t) for name, t in times.items()}
        entry["jet / data"] = _bench.ratio(times["pde jet"], times["data"])
        entry["nested / data"] = _bench.ratio(times["pde nested"], times["data"])
        entry["nested / jet"] = _bench.ratio(times["pde nested"], times["pde jet"])
        if "pde jet unmarked" in times:
            entry["unmarked / data"] = _bench.ratio(times["pde jet unmarked"], times["data"])
        entry["loss rel diff"] = abs(vj - vn) / abs(vn)
        entry["grad rel diff"] = agree
        result["configs"][f"{width} G={grid}"] = entry
        _bench.log(f"[{backend}] {width} G={grid}: " + ", ".join(
            f"{k} {v * 1e3:.2f} ms" for k, v in entry.items() if k in objectives)
            + f"; jet/data {entry['jet / data']:.2f}x, unmarked jet/data "
            f"{entry.get('unmarked / data', float('nan')):.2f}x, nested/data "
            f"{entry['nested / data']:.2f}x; grad rel diff {agree:.1e}")
    return result


def report(results):
    header = ["model", "backend", "data ms", "PDE jet ms", "PDE nested ms",
              "jet / data", "nested / data", "nested / jet", "grad rel. diff",
              "unmarked jet ms (TF)", "unmarked jet / data"]
    rows = []
    for cfg in [f"{w} G={g}" for w, g in CONFIGS]:
        for backend, res in results.items():
            e = res.get("configs", {}).get(cfg)
            if e is None:
                rows.append([cfg, backend, res.get("error", "-")] + ["-"] * 8)
                continue
            rows.append([cfg, LABEL.get(backend, backend), _bench.fmt_ms(e["data"]),
                         _bench.fmt_ms(e["pde jet"]), _bench.fmt_ms(e["pde nested"]),
                         _bench.fmt_x(e["jet / data"]), _bench.fmt_x(e["nested / data"]),
                         _bench.fmt_x(e["nested / jet"]), f"{e['grad rel diff']:.1e}"]
                        + ([_bench.fmt_ms(e["pde jet unmarked"]),
                            _bench.fmt_x(e["unmarked / data"])]
                           if "pde jet unmarked" in e else ["-", "-"]))
    print(_bench.markdown_table(header, rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--backends", default=",".join(_bench.BACKENDS))
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.backend:
        _bench.emit(child(args.backend, args.repeats))
        return
    results = _bench.run_children(os.path.abspath(__file__), args.backends.split(","),
                                  ["--repeats", str(args.repeats)], timeout=1800)
    report(results)


if __name__ == "__main__":
    main()
