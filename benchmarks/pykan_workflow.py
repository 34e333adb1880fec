"""The canonical pykan workflow, timed per backend beside pykan 0.2.8 on the same data.

    python benchmarks/pykan_workflow.py [--backends tensorflow,jax,torch]
                                        [--pykan-python PATH] [--jax-cache]
                                        [--without-tf]

The run (KAN paper / pykan tutorial): `exp(cos(pi x) + y^2)`, 800 train and
200 test points in [0, 1]^2, a `[2, 5, 1]` KAN (grid 5, cubic, seed 0);
stage 1: 20 L-BFGS steps with `lamb=0.01, lamb_entropy=10` and grid updates
(pykan's `fit` defaults: every 5 steps during the first 50); prune; stage 2:
100 L-BFGS steps with grid updates, no penalty. Each keras_kan backend runs in
its own process, from import to the end (so tracing and compilation count);
pykan runs in a process of the interpreter that has it (`--pykan-python`, or
this one if `import kan` works there), with `auto_save=False` (its default
writes a checkpoint every step, which would only make it slower). The table
gives seconds per step of each stage, the two stages with the prune between
them (what issue 32's target counts: compilation included, imports not), the
whole run, and the ratios to pykan.

`--jax-cache` adds a row for a JAX user who runs the script a second time with
JAX's persistent compilation cache on (`JAX_COMPILATION_CACHE_DIR`): the first
run fills a fresh cache, the row is the second run's. `--without-tf` adds JAX and
PyTorch rows run as if TensorFlow were not installed (`pip install keras-kan[jax]`):
with it installed, the first Keras config serialization of a process (here `prune`'s
recompile) imports it, seconds of a JAX or PyTorch run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

STAGE1, STAGE2 = 20, 100

PYKAN_CHILD = """
import json, sys, time
t0 = time.perf_counter()
STAGE1, STAGE2 = int(sys.argv[2]), int(sys.argv[3])
import numpy as np, torch
from kan import KAN
data = np.load(sys.argv[1])
torch.set_default_dtype(torch.float32)
d = {k: torch.tensor(data[k], dtype=torch.float32)
     for k in ("train_input", "train_label", "test_input", "test_label")}
import os
os.makedirs("model", exist_ok=True)  # prune() logs to ckpt_path's history even without auto_save
model = KAN(width=[2, 5, 1], grid=5, k=3, seed=0, auto_save=False, device="cpu")
t1 = time.perf_counter()
model.fit(d, opt="LBFGS", steps=STAGE1, lamb=0.01, lamb_entropy=10.0, log=10**9)
t2 = time.perf_counter()
model = model.prune()
t3 = time.perf_counter()
model.fit(d, opt="LBFGS", steps=STAGE2, log=10**9)
t4 = time.perf_counter()
rmse = float(torch.sqrt(torch.mean((model(d["test_input"]) - d["test_label"]) ** 2)))
width = [int(w[0]) if isinstance(w, list) else int(w) for w in model.width]
print("@@PYKAN@@ " + json.dumps({"stage1": t2 - t1, "prune": t3 - t2, "stage2": t4 - t3,
                                 "total": t4 - t0, "rmse": rmse, "width": width}))
"""


def child(backend, data_path, compiled=None):
    """The canonical run in this process; `compiled`: `fit_lbfgs(compiled=...)`."""
    if os.environ.get("KANBENCH_WITHOUT_TF") == "1":
        sys.modules["tensorflow"] = None  # `import tensorflow` raises ImportError
    t0 = time.perf_counter()
    import numpy as np

    from keras_kan import KAN, KANRegularizer, fit_lbfgs, prune, set_regularizer

    data = np.load(data_path)
    train = (data["train_input"], data["train_label"])
    test = (data["test_input"], data["test_label"])
    model = KAN([2, 5, 1], grid_size=5, spline_order=3, seed=0,
                regularizer=KANRegularizer(l1=0.01, entropy=0.1))
    model.compile(loss="mse")
    t1 = time.perf_counter()
    fit_lbfgs(model, *train, steps=STAGE1, update_grid=True, verbose=0, compiled=compiled)
    t2 = time.perf_counter()
    model = prune(model, train[0], verbose=False)
    set_regularizer(model, None)
    t3 = time.perf_counter()
    fit_lbfgs(model, *train, steps=STAGE2, update_grid=True, verbose=0, compiled=compiled)
    t4 = time.perf_counter()
    pred = np.asarray(model.predict(test[0], verbose=0), np.float64)
    return {"stage1": t2 - t1, "prune": t3 - t2, "stage2": t4 - t3, "total": t4 - t0,
            "rmse": float(np.sqrt(np.mean((pred - test[1]) ** 2))),
            "width": [2] + [layer.units for layer in model.layers]}


def run_with_env(backend, data, runs=1, **env):
    """`runs` children of `backend` with `env` added to the environment; the last result."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        for _ in range(runs):
            result = _bench.run_children(os.path.abspath(__file__), [backend],
                                         ["--data", data], timeout=1800)[backend]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return result


def warm_cache_run(data, tmp):
    """The JAX child twice on one fresh persistent compilation cache; the second run."""
    return run_with_env("jax", data, runs=2,
                        JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, "jax_cache"),
                        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def make_data(path):
    """The canonical data (keras_kan.datasets, seed 0), written for every child."""
    env = dict(os.environ, KERAS_BACKEND="torch")
    code = ("import sys, numpy as np\n"
            "from keras_kan.datasets import create_dataset\n"
            "(a, b), (c, d) = create_dataset('exp_cos_sq', n_var=2, n_samples=1000, "
            "ranges=(0, 1), seed=0, test_split=0.2)\n"
            "np.savez(sys.argv[1], train_input=a, train_label=b, test_input=c, test_label=d)\n")
    subprocess.run([sys.executable, "-c", code, path], env=env, check=True)


def run_pykan(python, data_path):
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    with tempfile.TemporaryDirectory() as work:  # pykan writes files next to itself
        args = [python, "-c", PYKAN_CHILD, data_path, str(STAGE1), str(STAGE2)]
        proc = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@PYKAN@@ ")]
    if not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1][len("@@PYKAN@@ "):])


def pykan_python(given):
    if given:
        return given
    probe = subprocess.run([sys.executable, "-c", "import kan"], capture_output=True)
    return sys.executable if probe.returncode == 0 else None


def report(results, pykan):
    header = ["run", "stage 1 s/step", "stage 2 s/step", "prune s", "stages s",
              "x pykan (stages)", "whole run s", "x pykan (whole)", "test RMSE", "widths"]
    rows = []
    for name, r in list(results.items()) + ([("pykan 0.2.8", pykan)] if pykan else []):
        if "error" in r:
            rows.append([name, r["error"]] + ["-"] * (len(header) - 2))
            continue
        stages = r["stage1"] + r["prune"] + r["stage2"]
        ok = pykan and "error" not in pykan
        pykan_stages = pykan["stage1"] + pykan["prune"] + pykan["stage2"] if ok else None
        rows.append([name, f"{r['stage1'] / STAGE1:.3f}", f"{r['stage2'] / STAGE2:.3f}",
                     f"{r['prune']:.2f}", f"{stages:.2f}",
                     f"{stages / pykan_stages:.2f}x" if ok else "-", f"{r['total']:.1f}",
                     f"{r['total'] / pykan['total']:.2f}x" if ok else "-",
                     f"{r['rmse']:.2e}", str(r["width"])])
    print(_bench.markdown_table(header, rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(_bench.BACKENDS))
    parser.add_argument("--pykan-python", default=None,
                        help="a Python with pykan==0.2.8 (default: this one, if it has it)")
    parser.add_argument("--jax-cache", action="store_true",
                        help="add a JAX row run with a warm persistent compilation cache")
    parser.add_argument("--without-tf", action="store_true",
                        help="add JAX and PyTorch rows run as if TensorFlow were not installed")
    args = parser.parse_args()
    if args.backend:
        _bench.emit(child(args.backend, args.data))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "canonical.npz")
        make_data(data)
        results = _bench.run_children(os.path.abspath(__file__), args.backends.split(","),
                                      ["--data", data], timeout=1800)
        if args.jax_cache:
            results["jax, warm compile cache"] = warm_cache_run(data, tmp)
        if args.without_tf:
            for backend in ("jax", "torch"):
                results[f"{backend}, TensorFlow not installed"] = run_with_env(
                    backend, data, KANBENCH_WITHOUT_TF="1")
        python = pykan_python(args.pykan_python)
        pykan = run_pykan(python, data) if python else {"error": "pykan not installed"}
    report(results, pykan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
