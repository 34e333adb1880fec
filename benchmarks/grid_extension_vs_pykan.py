"""Grid extension side by side: keras_kan on every backend and pykan 0.2.8, same run.

    python benchmarks/grid_extension_vs_pykan.py [--backends tensorflow,jax,torch]
                                                 [--grids 3,5,10,20,50] [--steps 200]

The protocol of pykan's grid-extension tutorial (the paper's Figure 2.3 setup):
f(x, y) = exp(sin(pi x) + y^2) on [-1, 1]^2, 1000 train / 1000 test points
(`keras_kan.datasets.create_dataset`, seed 0, the same points pykan's own
`create_dataset` draws), a `[2, 1, 1]` KAN (cubic, model seed 1) trained
200 L-BFGS steps per grid with grid updates on the first 50 steps, refined
3 -> 5 -> 10 -> 20 -> 50, float32. keras_kan runs `examples/grid_extension.py`'s
`run`; pykan runs `KAN(width=[2,1,1], grid=3, k=3, seed=1)`, `refine` and
`fit(opt="LBFGS", steps=200)` on the same arrays (in the PyTorch child, when
`pykan` is installed). Each backend is its own process. Prints train/test
RMSE per grid size.

Note: pykan's float32 results vary from run to run on the same seed (two runs
here gave test RMSE 6.1e-5 and 1.2e-4 at grid 20); below ~1e-4 float32 rounding
of the loss decides where L-BFGS stops, so treat single digits there as noise.
"""

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(HERE), "examples", "grid_extension.py")
sys.path.insert(0, HERE)
import _bench  # noqa: E402

MODEL_SEED, DATA_SEED = 1, 0


def pykan_rows(grids, steps):
    import numpy as np
    import torch
    from kan import KAN

    from keras_kan.datasets import create_dataset

    train, test = create_dataset(lambda v: np.exp(np.sin(np.pi * v[:, 0]) + v[:, 1] ** 2),
                                 n_var=2, n_samples=2000, ranges=(-1, 1), seed=DATA_SEED,
                                 test_split=0.5, dtype="float32")
    data = {"train_input": torch.tensor(np.asarray(train[0])),
            "train_label": torch.tensor(np.asarray(train[1])),
            "test_input": torch.tensor(np.asarray(test[0])),
            "test_label": torch.tensor(np.asarray(test[1]))}

    def rmse(model, x, y):
        with torch.no_grad():
            return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))

    rows, model = [], None
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # pykan writes checkpoints and logs to ./model
        os.makedirs("model", exist_ok=True)
        try:
            for grid in grids:
                start = time.perf_counter()
                if model is None:
                    model = KAN(width=[2, 1, 1], grid=grid, k=3, seed=MODEL_SEED,
                                auto_save=False)
                else:
                    model = model.refine(grid)
                model.fit(data, opt="LBFGS", steps=steps, log=10**9)
                rows.append((grid, rmse(model, data["train_input"], data["train_label"]),
                             rmse(model, data["test_input"], data["test_label"]),
                             time.perf_counter() - start))
                _bench.log(f"[pykan] grid {grid}: test RMSE {rows[-1][2]:.2e}")
        finally:
            os.chdir(cwd)
    return rows


def child(backend, grids, steps):
    import importlib.util

    spec = importlib.util.spec_from_file_location("grid_extension_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = {"backend": backend, "rows": example.run(grids, steps, MODEL_SEED, DATA_SEED,
                                                      "float32")}
    if backend == "torch":
        try:
            result["pykan"] = pykan_rows(grids, steps)
        except ImportError as e:
            result["note"] = f"pykan not installed ({e})"
    return result


def report(results, grids):
    columns = [(b, r["rows"]) for b, r in results.items() if "rows" in r]
    columns += [("pykan 0.2.8", r["pykan"]) for r in results.values() if "pykan" in r]
    header = ["grid"] + [f"{name} train / test" for name, _ in columns]
    rows = []
    for i, grid in enumerate(grids):
        rows.append([str(grid)] + [f"{rs[i][1]:.2e} / {rs[i][2]:.2e}" if i < len(rs) else "—"
                                   for _, rs in columns])
    print(_bench.markdown_table(header, rows))
    for backend, res in results.items():
        for key in ("note", "error"):
            if key in res:
                print(f"{key} ({backend}): {res[key]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(_bench.BACKENDS))
    parser.add_argument("--grids", default="3,5,10,20,50")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    grids = [int(g) for g in args.grids.split(",")]
    if args.backend:
        _bench.emit(child(args.backend, grids, args.steps))
        return 0
    results = _bench.run_children(os.path.abspath(__file__), args.backends.split(","),
                                  ["--grids", args.grids, "--steps", str(args.steps)],
                                  timeout=1800)
    report(results, grids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
