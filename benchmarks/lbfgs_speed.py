"""Seconds per L-BFGS step, per backend, for the quickstart KAN and a deeper one.

    python benchmarks/lbfgs_speed.py [--steps 5] [--backends tensorflow,jax,torch]

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(_bench.BACKENDS))
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    if args.backend:
        _bench.emit(child(args.backend, args.steps))
        return 0
    results = _bench.run_children(os.path.abspath(__file__), args.backends.split(","),
                                  ["--steps", str(args.steps)], timeout=900)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
