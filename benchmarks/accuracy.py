"""Accuracy, measured: the KAN paper's problems against pykan 0.2.8 and an MLP, and real data.

    KERAS_BACKEND=jax python benchmarks/accuracy.py --quick [--part paper|real|all]
                                                    [--pykan /tmp/pykan-venv/bin/python]

(a) The paper's problems: 6 special functions (scipy.special, two inputs on
    [0.1, 0.9]^2) and 6 Feynman equations in dimensionless form (variables and
    ranges as in the AI Feynman set); 1000 train / 1000 test points per
    problem. Protocol of the paper's grid-extension runs: a `[n, 5, 1]` KAN,
    grids 3 -> 5 -> 10 -> 20, each trained `--steps` L-BFGS steps with grid
    updates (pykan's `fit` defaults: every 5 steps up to step 50), no penalty,
    no pruning. keras_kan (`fit_lbfgs`, `refine`) and pykan (`fit`,
    `refine`, in a subprocess of the pykan interpreter on the same arrays) use
    the same seeds; an MLP (SiLU, 2 hidden layers of 32) trains with L-BFGS
    for the same total steps. Test RMSE: best and median over seeds.
(b) Real data: scikit-learn's bundled diabetes, breast_cancer, wine, digits,
    iris; 75/25 stratified split per seed, StandardScaler on the inputs (and on
    diabetes' target). At equal parameters: the KAN as a README writes it
    (`[Input, KANDense(8), KANDense(out)]`, Adam 3e-3, fixed epochs), the
    documented recipe (docs/benchmarks.md: `grid_range="data"` on every layer,
    Adam `--recipe-rate`, default 3e-3, 20% of the training rows held out for
    `EarlyStopping(patience=5, restore_best_weights=True)`, at most the run's
    epochs), a ReLU MLP with one hidden layer sized to the KAN's parameter
    count as the issue set it up (Adam 3e-3, fixed epochs), and the same MLP
    with the recipe's hold-out and early stopping. Mean +- sd over seeds of
    test RMSE (diabetes) or accuracy, and training time.

`--quick`: 1 seed and 20 steps per grid for (a); 3 seeds and 30 epochs for (b).
The full run: 3 seeds and 50 steps per grid; 5 seeds and at most 150 epochs.
Measured on the idle 2-core machine (2026-12-04): `--quick --pykan ""` 3 min 44 s;
the full run with pykan 37 minutes, pykan's side of (a) setting the pace
(`--pykan-timeout` stops it and keeps the problems it finished; `--pykan ""`
skips it). Prints Markdown tables.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

GRIDS = (3, 5, 10, 20)
HIDDEN = 5


# ------------------------------------------------------------------ problems
def _special():
    from scipy import special

    return {
        "ellipkinc": lambda x: special.ellipkinc(x[:, 0], x[:, 1]),
        "ellipeinc": lambda x: special.ellipeinc(x[:, 0], x[:, 1]),
        "jv": lambda x: special.jv(x[:, 0], x[:, 1]),
        "yv": lambda x: special.yv(x[:, 0], x[:, 1]),
        "kv": lambda x: special.kv(x[:, 0], x[:, 1]),
        "iv": lambda x: special.iv(x[:, 0], x[:, 1]),
    }


def _feynman():
    tau = 2 * np.pi
    return {  # name: (f, ranges), dimensionless forms
        "I.6.20a": (lambda x: np.exp(-x[:, 0] ** 2 / 2) / np.sqrt(tau), [(-3, 3)]),
        "I.16.6": (lambda x: (x[:, 0] + x[:, 1]) / (1 + x[:, 0] * x[:, 1] / x[:, 2] ** 2),
                   [(-0.8, 0.8), (-0.8, 0.8), (1, 2)]),
        "I.18.4": (lambda x: (x[:, 0] * x[:, 1] + x[:, 2] * x[:, 3]) / (x[:, 0] + x[:, 2]),
                   [(0.5, 1), (-1, 1), (0.5, 1), (-1, 1)]),
        "I.26.2": (lambda x: np.arcsin(x[:, 0] * np.sin(x[:, 1])), [(0, 0.99), (0, tau)]),
        "I.27.6": (lambda x: 1 / (1 / x[:, 0] + x[:, 2] / x[:, 1]),
                   [(0.5, 2), (1, 2), (0.5, 2)]),
        "I.29.16": (lambda x: np.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2
                                      - 2 * x[:, 0] * x[:, 1] * np.cos(x[:, 2] - x[:, 3])),
                    [(-1, 1), (-1, 1), (0, tau), (0, tau)]),
    }


def paper_problems():
    problems = {name: (f, [(0.1, 0.9)] * 2) for name, f in _special().items()}
    problems.update(_feynman())
    return problems


def make_data(f, ranges, seed=0, n=1000):
    rng = np.random.default_rng(seed)
    low, high = np.array(ranges, float).T
    x = (low + (high - low) * rng.random((2 * n, len(ranges)))).astype(np.float32)
    y = np.asarray(f(x.astype(np.float64)), np.float64)[:, None].astype(np.float32)
    assert np.all(np.isfinite(y)), "non-finite target"
    return x[:n], y[:n], x[n:], y[n:]


# ------------------------------------------------------------------ pykan child
def pykan_child(path, grids, steps, seeds, out_path):
    """Runs in the pykan interpreter (no keras_kan): same arrays, same protocol.

    Appends one JSON line `{name: [{rmse, time}, ...]}` per problem to `out_path`.
    """
    import torch
    from kan import KAN

    torch.set_default_dtype(torch.float32)
    data = np.load(path)
    names = [str(n) for n in data["names"]]
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # pykan writes checkpoints to ./model
        os.makedirs("model", exist_ok=True)
        try:
            for name in names:
                xtr, ytr, xte, yte = (torch.tensor(data[f"{name}/{k}"])
                                      for k in ("xtr", "ytr", "xte", "yte"))
                dataset = {"train_input": xtr, "train_label": ytr,
                           "test_input": xte, "test_label": yte}
                rows = []
                for seed in seeds:
                    t0 = time.perf_counter()
                    model = KAN(width=[xtr.shape[1], HIDDEN, 1], grid=grids[0], k=3, seed=seed)
                    for i, g in enumerate(grids):
                        if i:
                            model = model.refine(g)
                        model.fit(dataset, opt="LBFGS", steps=steps, update_grid=True,
                                  grid_update_num=10, stop_grid_update_step=50, log=10**9)
                    with torch.no_grad():
                        rmse = float(torch.sqrt(torch.mean((model(xte) - yte) ** 2)))
                    rows.append({"rmse": rmse, "time": time.perf_counter() - t0})
                with open(out_path, "a") as f:
                    f.write(json.dumps({name: rows}) + "\n")
        finally:
            os.chdir(cwd)


# ------------------------------------------------------------------ keras_kan side
def kan_protocol(xtr, ytr, xte, yte, grids, steps, seed):
    import keras

    import keras_kan

    t0 = time.perf_counter()
    model = keras_kan.KAN(width=[xtr.shape[1], HIDDEN, 1], grid_size=grids[0], seed=seed)
    for i, g in enumerate(grids):
        if i:
            model = keras_kan.refine(model, g, xtr)
        model.compile(loss="mse")
        keras_kan.fit_lbfgs(model, xtr, ytr, steps=steps, update_grid=True, grid_update_num=10,
                            stop_grid_update_step=50, verbose=0)
    pred = keras.ops.convert_to_numpy(model(xte))
    return {"rmse": float(np.sqrt(np.mean((pred - yte) ** 2))), "time": time.perf_counter() - t0,
            "params": trainable_params(model)}


def mlp_protocol(xtr, ytr, xte, yte, steps, seed):
    import keras

    import keras_kan

    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    model = keras.Sequential([keras.Input((xtr.shape[1],)), keras.layers.Dense(32, "silu"),
                              keras.layers.Dense(32, "silu"), keras.layers.Dense(1)])
    model.compile(loss="mse")
    keras_kan.fit_lbfgs(model, xtr, ytr, steps=steps, verbose=0)
    pred = keras.ops.convert_to_numpy(model(xte))
    return {"rmse": float(np.sqrt(np.mean((pred - yte) ** 2))), "time": time.perf_counter() - t0,
            "params": trainable_params(model)}


def trainable_params(model):
    """Trainable parameters (a KAN's grids and masks are weights, but not parameters)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _best_median(rows):
    values = [r["rmse"] for r in rows]
    return min(values), statistics.median(values)


def run_paper(args):
    problems = paper_problems()
    seeds = list(range(args.paper_seeds))
    datasets = {name: make_data(f, ranges) for name, (f, ranges) in problems.items()}
    # pykan runs in its own interpreter, beside the keras_kan side, on the same arrays.
    tmp = tempfile.mkdtemp()
    out_path = os.path.join(tmp, "pykan.jsonl")
    child = None
    if args.pykan and os.path.exists(args.pykan):
        path = os.path.join(tmp, "data.npz")
        arrays = {"names": np.array(list(datasets))}
        for name, parts in datasets.items():
            arrays.update({f"{name}/{k}": v for k, v in zip(("xtr", "ytr", "xte", "yte"),
                                                             parts)})
        np.savez(path, **arrays)
        child = subprocess.Popen(
            [args.pykan, os.path.abspath(__file__), "--pykan-child", path, "--pykan-out",
             out_path, "--steps", str(args.steps), "--paper-seeds", str(args.paper_seeds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"pykan child {child.pid} writes {out_path}", file=sys.stderr, flush=True)
    rows = []
    for name, (xtr, ytr, xte, yte) in datasets.items():
        kan = [kan_protocol(xtr, ytr, xte, yte, GRIDS, args.steps, s) for s in seeds]
        mlp = [mlp_protocol(xtr, ytr, xte, yte, args.steps * len(GRIDS), s) for s in seeds]
        row = {"name": name, "kan": _best_median(kan),
               "kan_time": np.mean([r["time"] for r in kan]),
               "kan_params": kan[0]["params"], "mlp": _best_median(mlp),
               "mlp_params": mlp[0]["params"], "mlp_time": np.mean([r["time"] for r in mlp])}
        rows.append(row)
        print(f"{name}: {row}", file=sys.stderr, flush=True)
    if child is not None:
        try:
            child.wait(timeout=args.pykan_timeout)
        except subprocess.TimeoutExpired:  # keep the problems pykan finished
            child.kill()
            print(f"pykan stopped after --pykan-timeout {args.pykan_timeout:.0f} s; "
                  "problems it did not finish show 'not run'", file=sys.stderr, flush=True)
    pykan = {}
    if os.path.exists(out_path):
        with open(out_path) as f:
            for line in f:
                pykan.update(json.loads(line))
    for row in rows:
        if row["name"] in pykan:
            row["pykan"] = _best_median(pykan[row["name"]])
            row["pykan_time"] = np.mean([r["time"] for r in pykan[row["name"]]])
    lines = ["| problem | keras_kan best / median | pykan 0.2.8 best / median | ratio (median) "
             "| MLP best / median | KAN params | MLP params | time kk / pykan / MLP (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        pk = r.get("pykan")
        ratio = f"{r['kan'][1] / pk[1]:.2f}" if pk else "-"
        pk_text = f"{pk[0]:.2e} / {pk[1]:.2e}" if pk else "not run"
        lines.append(
            f"| {r['name']} | {r['kan'][0]:.2e} / {r['kan'][1]:.2e} | {pk_text} | {ratio} | "
            f"{r['mlp'][0]:.2e} / {r['mlp'][1]:.2e} | {r['kan_params']} | {r['mlp_params']} | "
            f"{r['kan_time']:.1f} / {r.get('pykan_time', float('nan')):.1f} / "
            f"{r['mlp_time']:.1f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ real data
def real_sets():
    from sklearn import datasets

    return {"diabetes": (datasets.load_diabetes, "regression"),
            "breast_cancer": (datasets.load_breast_cancer, "classification"),
            "wine": (datasets.load_wine, "classification"),
            "digits": (datasets.load_digits, "classification"),
            "iris": (datasets.load_iris, "classification")}


def split(loader, task, seed):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = loader(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed,
                                          stratify=y if task == "classification" else None)
    scaler = StandardScaler().fit(xtr)
    xtr, xte = scaler.transform(xtr).astype("float32"), scaler.transform(xte).astype("float32")
    if task == "regression":
        mean, sd = ytr.mean(), ytr.std()
        ytr, yte = ((ytr - mean) / sd)[:, None], ((yte - mean) / sd)[:, None]
        return xtr, ytr.astype("float32"), xte, yte.astype("float32"), 1
    return xtr, ytr.astype("int32"), xte, yte.astype("int32"), int(y.max()) + 1


def real_model(kind, n_in, out, seed):
    import keras

    from keras_kan import KANDense

    keras.utils.set_random_seed(seed)
    if kind.startswith("mlp"):
        kan_params = KANDense(8)  # count a KAN's parameters to match them
        per_edge = kan_params.grid_size + kan_params.spline_order + 2
        target = per_edge * 8 * (n_in + out)
        hidden = max(1, round((target - out) / (n_in + 1 + out)))
        layers = [keras.layers.Dense(hidden, "relu"), keras.layers.Dense(out)]
    else:
        extra = {"grid_range": "data"} if kind == "recipe" else {}
        layers = [KANDense(8, seed=seed, **extra), KANDense(out, seed=seed + 1, **extra)]
    return keras.Sequential([keras.Input((n_in,)), *layers])


def run_real(args):
    import warnings

    import keras

    seeds = list(range(args.real_seeds))
    kinds = ("readme", "recipe", "mlp", "mlp_es")
    rows = []
    for name, (loader, task) in real_sets().items():
        scores = {k: [] for k in kinds}
        times = {k: [] for k in kinds}
        params = {}
        for seed in seeds:
            xtr, ytr, xte, yte, out = split(loader, task, seed)
            for kind in kinds:
                model = real_model(kind, xtr.shape[1], out, seed)
                params[kind] = trainable_params(model)
                loss = ("mse" if task == "regression"
                        else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                rate = args.recipe_rate if kind == "recipe" else 3e-3
                model.compile(keras.optimizers.Adam(rate), loss)
                fit_args = {}
                if kind in ("recipe", "mlp_es"):  # hold out 20%, stop on its loss
                    fit_args = {"validation_split": 0.2, "callbacks": [
                        keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)]}
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the README model warns, as it should
                    model.fit(xtr, ytr, epochs=args.epochs, batch_size=32, verbose=0,
                              **fit_args)
                times[kind].append(time.perf_counter() - t0)
                pred = keras.ops.convert_to_numpy(model.predict(xte, verbose=0, batch_size=512))
                if task == "regression":
                    scores[kind].append(float(np.sqrt(np.mean((pred - yte) ** 2))))
                else:
                    scores[kind].append(float(np.mean(pred.argmax(-1) == yte)))
        rows.append((name, task, scores, times, params))
        print(name, {k: np.round(v, 4).tolist() for k, v in scores.items()}, file=sys.stderr,
              flush=True)
    lines = ["| dataset (metric) | KAN, README | KAN, recipe | MLP | MLP, early stopping | "
             "params KAN / MLP | time README / recipe / MLP / MLP-ES (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, task, scores, times, params in rows:
        metric = "test RMSE, lower is better" if task == "regression" else "test accuracy"
        sd = {k: np.std(scores[k], ddof=1) if len(seeds) > 1 else 0.0 for k in kinds}
        cells = [f"{np.mean(scores[k]):.3f} ± {sd[k]:.3f}" for k in kinds]
        lines.append(f"| {name} ({metric}) | {' | '.join(cells)} | {params['readme']} / "
                     f"{params['mlp']} | " + " / ".join(f"{np.mean(times[k]):.1f}" for k in kinds)
                     + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=("paper", "real", "all"), default="all")
    parser.add_argument("--pykan", default="/tmp/pykan-venv/bin/python")
    parser.add_argument("--pykan-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pykan-out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pykan-timeout", type=float, default=3600)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--paper-seeds", type=int, default=None)
    parser.add_argument("--real-seeds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--recipe-rate", type=float, default=3e-3,
                        help="Adam rate of the recipe KAN")
    args = parser.parse_args()
    args.steps = args.steps or (20 if args.quick else 50)
    args.paper_seeds = args.paper_seeds or (1 if args.quick else 3)
    args.epochs = args.epochs or (30 if args.quick else 150)
    args.real_seeds = args.real_seeds or (3 if args.quick else 5)
    if args.pykan_child:
        pykan_child(args.pykan_child, GRIDS, args.steps, list(range(args.paper_seeds)),
                    args.pykan_out)
        return
    import keras

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, "
          f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs", flush=True)
    if args.part in ("paper", "all"):
        t0 = time.perf_counter()
        print(f"\n(a) paper problems, steps/grid {args.steps}, seeds {args.paper_seeds}\n")
        print(run_paper(args), flush=True)
        print(f"\n(a) took {time.perf_counter() - t0:.0f} s", flush=True)
    if args.part in ("real", "all"):
        t0 = time.perf_counter()
        print(f"\n(b) real data, {args.real_seeds} seeds, {args.epochs} epochs\n")
        print(run_real(args), flush=True)
        print(f"\n(b) took {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
