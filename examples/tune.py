"""KerasTuner searches over KANs (`keras_kan.tuner.HyperKAN`), beside an MLP searched alike.

Two problems:

* regression: y = sin(pi x0) + x1^2 + 0.5 x2 on [-1, 1]^5 (x3 and x4 are
  irrelevant), 1000 train / 200 validation / 500 test points from
  `keras_kan.datasets.create_dataset`. The KAN search trains every trial on the
  grid schedule 3 -> 5 -> 10 (train, refine, train, refine, train).
* digits: scikit-learn's bundled `load_digits` (8x8 images, 10 classes; no
  download), pixels scaled to [-1, 1], 60/20/20 train/validation/test split.

For each problem a `RandomSearch` over `HyperKAN` and one over a Dense MLP
(depth, widths, activation, learning rate) get the same budget: the same
number of trials and epochs. The tuner shows its progress (trial table, best
so far); the script prints each search's summary, then a table of what was
found, the test score and the search time, and saves the best models to
`saved_models/tune_<problem>_<kan|mlp>.keras`.

Run: `python examples/tune.py [--trials 5] [--epochs 20] [--problems regression,digits]`
(`KERAS_BACKEND` picks the backend; TensorFlow by default).
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import keras_tuner
import numpy as np

from keras_kan.datasets import create_dataset
from keras_kan.tuner import HyperKAN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED = os.path.join(ROOT, "saved_models")


class QuietRandomSearch(keras_tuner.RandomSearch):
    """`RandomSearch` that shows the tuner's progress but no per-epoch progress bars."""

    def run_trial(self, trial, *args, **kwargs):
        kwargs["verbose"] = 0
        return super().run_trial(trial, *args, **kwargs)


def regression_data(seed):
    def f(x):
        return np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2 + 0.5 * x[:, 2]

    (x, y), test = create_dataset(f, n_var=5, n_samples=1700, seed=seed, test_split=500 / 1700)
    return (x[:1000], y[:1000]), (x[1000:], y[1000:]), test


def digits_data(seed):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0 * 2.0 - 1.0).astype("float32")  # pixels 0..16 -> [-1, 1]
    y = y.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    a, b = int(0.6 * len(x)), int(0.8 * len(x))
    return (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:])


def mlp_builder(n_in, n_out, classification):
    def build(hp):
        layers = [keras.Input((n_in,))]
        activation = hp.Choice("activation", ["relu", "silu", "tanh"])
        for i in range(hp.Int("depth", 1, 3)):
            layers.append(keras.layers.Dense(hp.Int(f"units_{i}", 8, 64, step=8),
                                             activation=activation))
        layers.append(keras.layers.Dense(n_out,
                                         activation="softmax" if classification else None))
        model = keras.Sequential(layers, name="mlp")
        lr = hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
        model.compile(keras.optimizers.Adam(lr),
                      "sparse_categorical_crossentropy" if classification else "mse",
                      metrics=["accuracy"] if classification else None)
        return model

    return build


def kan_hypermodel(problem, n_in, seed):
    if problem == "regression":
        return HyperKAN((n_in,), 1, depth=[1, 2], grid_schedule=[3, 5, 10], seed=seed)
    return HyperKAN((n_in,), classes=10, depth=[0, 1], hidden_units=[8, 16],
                    grid_size=[3, 5], seed=seed)


def describe(hp):
    v = hp.values
    parts = [f"depth {v['depth']}"]
    widths = [v[f"units_{i}"] for i in range(v["depth"])]
    if widths:
        parts.append(f"widths {widths}")
    for key in ("grid_size", "spline_order", "activation", "optimizer"):
        if key in v:
            parts.append(f"{key} {v[key]}")
    if v.get("l1") or v.get("entropy"):
        parts.append(f"l1 {v['l1']:g} entropy {v['entropy']:g}")
    if "learning_rate" in v and v.get("optimizer") != "lbfgs":
        parts.append(f"lr {v['learning_rate']:.3g}")
    return ", ".join(parts)


def test_score(model, test, classification):
    pred = np.asarray(keras.ops.convert_to_numpy(model.predict(test[0], verbose=0)))
    if classification:
        return float(np.mean(pred.argmax(axis=1) == test[1]))
    return float(np.sqrt(np.mean((pred - test[1]) ** 2)))


def run_search(name, hypermodel, data, epochs, trials, seed, workdir, classification):
    (x, y), val, test = data
    tuner = QuietRandomSearch(hypermodel, objective="val_loss", max_trials=trials, seed=seed,
                              directory=workdir, project_name=name, overwrite=True)
    start = time.perf_counter()
    tuner.search(x, y, epochs=epochs, batch_size=32, validation_data=val, verbose=1)
    seconds = time.perf_counter() - start
    tuner.results_summary(num_trials=3)
    best = tuner.get_best_models(1)[0]
    hp = tuner.get_best_hyperparameters(1)[0]
    os.makedirs(SAVED, exist_ok=True)
    path = os.path.join(SAVED, f"tune_{name}.keras")
    best.save(path)
    score = test_score(best, test, classification)
    found = describe(hp)
    grids = sorted({layer.grid_size for layer in best.layers if hasattr(layer, "grid_size")})
    if grids and hp.values.get("grid_size") not in grids:
        found = found.replace(f"grid_size {hp.values['grid_size']}",
                              f"grid {hp.values['grid_size']}->{grids[-1]}")
    print(f"[{name}] saved the best model to {os.path.relpath(path, ROOT)}", flush=True)
    return {"name": name, "seconds": seconds, "score": score, "found": found,
            "params": best.count_params()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="trials per search")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial")
    parser.add_argument("--problems", default="regression,digits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for problem in args.problems.split(","):
            classification = problem == "digits"
            data = (digits_data if classification else regression_data)(args.seed)
            n_in = data[0][0].shape[1]
            n_out = 10 if classification else 1
            for kind, hypermodel in (
                ("kan", kan_hypermodel(problem, n_in, args.seed)),
                ("mlp", mlp_builder(n_in, n_out, classification)),
            ):
                print(f"\n=== {problem}: {kind.upper()} search, {args.trials} trials x "
                      f"{args.epochs} epochs ===", flush=True)
                row = run_search(f"{problem}_{kind}", hypermodel, data, args.epochs,
                                 args.trials, args.seed, workdir, classification)
                row["metric"] = "test accuracy" if classification else "test RMSE"
                rows.append(row)
    print(f"\nbackend {keras.backend.backend()}, {args.trials} trials x {args.epochs} epochs "
          "per search")
    print(f"{'search':<16} {'metric':<14} {'score':>7} {'params':>7} {'time':>7}  best found")
    for r in rows:
        print(f"{r['name']:<16} {r['metric']:<14} {r['score']:>7.4f} {r['params']:>7d} "
              f"{r['seconds']:>6.1f}s  {r['found']}")


if __name__ == "__main__":
    main()
