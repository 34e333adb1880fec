"""Seconds per L-BFGS step, per backend, for the quickstart KAN and a deeper one.

    python benchmarks/lbfgs_speed.py [--steps 5] [--backends tensorflow,jax,torch]
    python benchmarks/lbfgs_speed.py --paths [--poisson-steps 50] [--backends ...]

`--paths`: the host L-BFGS loop (`fit_lbfgs(compiled=False)`, `keras_kan.lbfgs_core`)
against the compiled one (`compiled=True`, `keras_kan.lbfgs_compiled`), each backend
and path in its own process from import to the end (compilation counts): the canonical
run's two stages (`pykan_workflow.py`'s run, with pykan 0.2.8 beside it on the same
data when `import kan` works) and `examples/poisson.py`'s protocol (grids 5, 10, 20,
`--poisson-steps` steps each, no MLP; 0 skips it). The Poisson table adds the path
before issue 32 (nested autodiff for the Laplacian, host loop) as the baseline of each
backend. Ratios are within this one run.

One step = pykan's `fit(opt="LBFGS")` step: up to 20 L-BFGS iterations / 25
loss-and-gradient evaluations (history 10, strong Wolfe, tolerances 1e-32, so
no early exit), full batch of 1000 points. Models: `[2, 5, 1]` and
`[10, 10, 10, 1]` KANs (grid 5, cubic) with `keras_kan.fit_lbfgs`, an MLP
of the same parameter count with `fit_lbfgs`, and pykan 0.2.8's own LBFGS
(PyTorch process only, when `pykan` is installed). Each backend runs in its
own process; the table shows seconds per step and the ratio to pykan.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402
import compare  # noqa: E402

CONFIGS = [([2, 5, 1], 1000, 5), ([10, 10, 10, 1], 1000, 5)]


def child(backend, steps):
    import numpy as np

    peers, notes = compare.find_peers(backend)
    result = {"backend": backend, "configs": {}, "notes": list(notes.values())}
    for width, batch, grid in CONFIGS:
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, size=(batch, width[0])).astype("float32")
        y = np.sin(np.pi * x[:, :1]) + (x[:, 1:2] ** 2 if width[0] > 1 else 0)
        times, more = compare.lbfgs_times(backend, (x, y.astype("float32")),
                                          (width, batch, grid), steps, peers)
        result["notes"] += more
        result["configs"][str(width)] = {k: _bench.median(v) for k, v in times.items()}
        _bench.log(f"[{backend}] {width}: " + ", ".join(
            f"{k} {_bench.median(v):.3f} s" for k, v in times.items()))
    return result


def report(results):
    pykan = {}
    for res in results.values():
        for cfg, entry in res.get("configs", {}).items():
            if "pykan" in entry:
                pykan[cfg] = entry["pykan"]
    header = ["model", "backend", "KAN s/step", "MLP s/step", "KAN / pykan"]
    rows = []
    for cfg in [str(c[0]) for c in CONFIGS]:
        for backend, res in results.items():
            entry = res.get("configs", {}).get(cfg, {})
            kan, mlp = entry.get("kan"), entry.get("mlp")
            rows.append([cfg, backend, f"{kan:.3f}" if kan else "-",
                         f"{mlp:.3f}" if mlp else "-",
                         f"{kan / pykan[cfg]:.2f}x" if kan and cfg in pykan else "-"])
        if cfg in pykan:
            rows.append([cfg, "pykan 0.2.8 (torch)", f"{pykan[cfg]:.3f}", "-", "1.00x"])
    print(_bench.markdown_table(header, rows))
    for backend, res in results.items():
        for note in res.get("notes", []) + ([res["error"]] if "error" in res else []):
            print(f"note ({backend}): {note}")


def poisson_child(compiled, steps, nested=False):
    """examples/poisson.py's KAN protocol in this process: seconds and mesh MSE per grid.

    `nested`: the Laplacian from nested autodiff instead of the jet (`keras_kan.jet`
    declines every model), with the host loop: the path before issue 32.
    """
    import time

    t0 = time.perf_counter()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "examples"))
    import poisson

    import keras_kan

    original = keras_kan.fit_lbfgs

    def fit(*a, **k):
        return original(*a, compiled=compiled, **k)

    keras_kan.fit_lbfgs = fit
    if nested:
        keras_kan.jet.derivatives = lambda fn, x, second: None
    mesh, boundary, source = poisson.problem()
    _, rows = poisson.train_kan(mesh, boundary, source, (5, 10, 20), steps, seed=1)
    return {"total": time.perf_counter() - t0, "mse": [r[1] for r in rows],
            "grid_s": [r[2] for r in rows]}


def paths(backends, poisson_steps):
    import tempfile

    import pykan_workflow

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "canonical.npz")
        pykan_workflow.make_data(data)
        canonical, poisson = {}, {}
        for compiled in ("0", "1"):
            name = "compiled" if compiled == "1" else "host"
            for backend, r in _bench.run_children(
                    os.path.abspath(__file__), backends,
                    ["--canonical", data, "--compiled", compiled], timeout=1800).items():
                canonical[f"{backend}, {name}"] = r
        for name, extra in (("nested autodiff, host", ["--compiled", "0", "--nested"]),
                            ("host", ["--compiled", "0"]), ("compiled", ["--compiled", "1"])):
            for backend, r in _bench.run_children(
                    os.path.abspath(__file__), backends if poisson_steps else (),
                    ["--poisson", str(poisson_steps), *extra], timeout=3600).items():
                poisson[f"{backend}, {name}"] = r
        python = pykan_workflow.pykan_python(None)
        pykan = pykan_workflow.run_pykan(python, data) if python else {"error": "no pykan"}
    pykan_workflow.report(canonical, pykan)
    print()
    header = ["run", "whole s", "x nested autodiff + host (same backend)",
              "mesh MSE grid 5 / 10 / 20"]
    rows = []
    for name, r in poisson.items():
        if "error" in r:
            rows.append([name, r["error"], "-", "-"])
            continue
        before = poisson.get(name.split(",")[0] + ", nested autodiff, host", {})
        ratio = f"{r['total'] / before['total']:.2f}x" if "total" in before else "-"
        rows.append([name, f"{r['total']:.1f}", ratio, " / ".join(f"{m:.2e}" for m in r["mse"])])
    print(_bench.markdown_table(header, rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--canonical", help=argparse.SUPPRESS)
    parser.add_argument("--poisson", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--compiled", help=argparse.SUPPRESS)
    parser.add_argument("--nested", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(_bench.BACKENDS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--paths", action="store_true",
                        help="host against compiled L-BFGS: canonical run and Poisson")
    parser.add_argument("--poisson-steps", type=int, default=50)
    args = parser.parse_args()
    if args.backend and args.canonical:
        import pykan_workflow

        _bench.emit(pykan_workflow.child(args.backend, args.canonical, args.compiled == "1"))
        return 0
    if args.backend and args.poisson:
        _bench.emit(poisson_child(args.compiled == "1", args.poisson, args.nested))
        return 0
    if args.backend:
        _bench.emit(child(args.backend, args.steps))
        return 0
    if args.paths:
        paths(args.backends.split(","), args.poisson_steps)
        return 0
    results = _bench.run_children(os.path.abspath(__file__), args.backends.split(","),
                                  ["--steps", str(args.steps)], timeout=900)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
