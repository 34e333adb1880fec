"""What PyTorch pays per evaluation on small models, beside JAX and TensorFlow.

    python benchmarks/torch_overhead.py [--steps 20] [--backends tensorflow,jax,torch]
        [--continual-only] [--rounds N]

Per backend (each in its own process): milliseconds per evaluation of
`fit_lbfgs`'s objective and gradient (`keras_kan.backend.value_and_grad_fn`) on
the small models L-BFGS trains, and the wall time of
`examples/continual_learning.py`'s training (5 phases x `--steps` L-BFGS steps,
the KAN and its MLP; the example's default is 100 steps). On PyTorch each is
timed twice, interleaved: with the lean path (`keras_kan.backend.torch_chain`:
each KANDense's `call` and each Dense as its torch calls, in turn) and through
`model(...)` (the path before it, `torch_chain.ENABLED = False`). The ratio
columns divide by JAX's time. `--continual-only` skips the per-evaluation table;
`--rounds N` runs the backends N times in turn and prints each round's
continual-learning seconds and ratios (on a loaded machine the spread is the noise).

Models: the continual-learning KAN (`[1, 1]`, G = 200, 100 points, no base, fixed
scales) and its tanh MLP; the canonical run's `[2, 5, 1]` KAN (G = 5) on 800
points with its penalty (stage 1) and pruned to `[2, 1, 1]` without it (stage 2);
the Poisson objective of `examples/poisson.py` (`[2, 2, 1]`, G = 5, 51x51 mesh),
which calls the model itself and so takes `model(...)` on every backend.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
import _bench  # noqa: E402


def _cases():
    """{name: (model, x, y, objective or None)}, built fresh."""
    import continual_learning as cl
    import keras
    import numpy as np
    import poisson

    import keras_kan

    cases = {}
    x = cl.region(0, 100).astype("float32")
    y = cl.target(x).astype("float32")
    kan = cl.make_kan(200, 0)
    cases["continual KAN [1,1] G=200"] = (kan, x, y, None)
    width = int(round((-4 + np.sqrt(16 + 4 * (cl.trainable_count(kan) - 1))) / 2))
    cases[f"continual MLP [1,{width},{width},1]"] = (cl.make_mlp(width, 0), x, y, None)
    rng = np.random.default_rng(0)
    x2 = rng.uniform(0, 1, (800, 2)).astype("float32")
    y2 = np.exp(np.cos(np.pi * x2[:, :1]) + x2[:, 1:] ** 2).astype("float32")
    for name, width_list, reg in (
            ("canonical stage 1 [2,5,1] + penalty", [2, 5, 1],
             keras_kan.KANRegularizer(l1=0.01, entropy=0.1)),
            ("canonical stage 2 [2,1,1]", [2, 1, 1], None)):
        model = keras_kan.KAN(width_list, grid_size=5, seed=0, regularizer=reg)
        model.compile(loss="mse")
        cases[name] = (model, x2, y2, None)
    mesh, boundary, source = poisson.problem(51)
    model = keras_kan.KAN([2, 2, 1], grid_size=5, seed=1)
    cases["Poisson objective [2,2,1] G=5 (model(...))"] = (
        model, None, None, poisson.poisson_objective(mesh, boundary, source))
    for model, *_ in cases.values():
        model(keras.ops.zeros((1, model.inputs[0].shape[-1])))
    return cases


def _evaluation_times(backend, repeats):
    import keras

    from keras_kan import backend as kan_backend

    toggles = [("lean", True), ("model(...)", False)] if backend == "torch" else [("", None)]
    out = {}
    for name, (model, x, y, objective) in _cases().items():
        if objective is None:
            fn = kan_backend.value_and_grad_fn(model)
            args = (keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y))
        else:
            fn = kan_backend.objective_value_and_grad_fn(model, objective)
            args = (None, None)
        fns = {}
        for label, enabled in toggles:
            def call(enabled=enabled, fn=fn, args=args):
                if enabled is not None:
                    _set_lean(enabled)
                try:
                    return fn(*args)
                finally:
                    if enabled is not None:
                        _set_lean(True)
            fns[label] = call
        times = _bench.interleaved(fns, repeats, target_s=0.2, warmup=2)
        out[name] = {label: _bench.median(v) for label, v in times.items()}
        _bench.log(f"[{backend}] {name}: " + ", ".join(
            f"{label or backend} {_bench.fmt_ms(t)}" for label, t in out[name].items()))
    return out


def _set_lean(enabled):
    from keras_kan.backend import torch_chain

    torch_chain.ENABLED = enabled


def _continual_time(steps, lean):
    """Seconds of `continual_learning.run` (both models, 5 phases), as the example times it."""
    import contextlib
    import io

    import continual_learning as cl

    if lean is not None:
        _set_lean(lean)
    models = {"KAN": cl.make_kan(200, 0)}
    width = int(round((-4 + (16 + 4 * (cl.trainable_count(models["KAN"]) - 1)) ** 0.5) / 2))
    models["MLP"] = cl.make_mlp(width, 0)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        cl.run(models, 5, steps, 100)
    seconds = time.perf_counter() - start
    if lean is not None:
        _set_lean(True)
    return seconds


def child(backend, steps, repeats, continual_only=False):
    result = {"backend": backend}
    if not continual_only:
        result["evaluations"] = _evaluation_times(backend, repeats)
    _continual_time(2, True if backend == "torch" else None)  # warm-up (first calls, caches)
    runs = [("lean", True), ("model(...)", False)] if backend == "torch" else [("", None)]
    result["continual"] = {}
    for label, lean in runs:
        result["continual"][label] = _continual_time(steps, lean)
        _bench.log(f"[{backend}] continual_learning ({steps} steps/phase) {label}: "
                   f"{result['continual'][label]:.1f} s")
    return result


def report(results, steps):
    jax = results.get("jax", {})
    torch = results.get("torch", {})
    header = ["workload", "TF", "JAX", "Torch lean", "Torch model(...)", "lean / JAX",
              "model(...) / JAX"]
    rows = []

    def cell(res, key, label, fmt):
        entry = res.get(key[0], {})
        value = (entry.get(key[1], {}) if key[1] else entry).get(label)
        return value, (fmt(value) if value is not None else "-")

    names = list(next((r["evaluations"] for r in results.values() if "evaluations" in r), {}))
    keys = [(("evaluations", n), n + ", ms / evaluation", _bench.fmt_ms) for n in names]
    keys.append((("continual", None), f"continual_learning.py, {steps} steps/phase, s",
                 lambda s: f"{s:.1f}"))
    for key, title, fmt in keys:
        _, tf_cell = cell(results.get("tensorflow", {}), key, "", fmt)
        j, j_cell = cell(jax, key, "", fmt)
        lean, lean_cell = cell(torch, key, "lean", fmt)
        plain, plain_cell = cell(torch, key, "model(...)", fmt)
        rows.append([title, tf_cell, j_cell, lean_cell, plain_cell,
                     _bench.fmt_x(lean / j) if lean and j else "-",
                     _bench.fmt_x(plain / j) if plain and j else "-"])
    print(_bench.markdown_table(header, rows))
    for backend, res in results.items():
        if "error" in res:
            print(f"note ({backend}): {res['error']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(_bench.BACKENDS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--continual-only", action="store_true",
                        help="only the continual-learning run (no per-evaluation table)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every backend this many times, in turn, and print the "
                             "continual-learning seconds and ratios of each round")
    args = parser.parse_args()
    if args.backend:
        _bench.emit(child(args.backend, args.steps, args.repeats, args.continual_only))
        return 0
    extra = ["--continual-only"] if args.continual_only else []
    rounds = []
    for _ in range(max(1, args.rounds)):
        rounds.append(_bench.run_children(
            os.path.abspath(__file__), args.backends.split(","),
            ["--steps", str(args.steps), "--repeats", str(args.repeats)] + extra,
            timeout=1800))
    report(rounds[-1], args.steps)
    if len(rounds) > 1:
        report_rounds(rounds, args.steps)
    return 0


def report_rounds(rounds, steps):
    """One row per round: the continual-learning seconds per backend, side by side."""
    def seconds(res, label):
        return res.get("continual", {}).get(label)

    header = ["round", "TF s", "JAX s", "Torch lean s", "Torch model(...) s", "lean / JAX",
              "model(...) / JAX"]
    rows = []
    for i, results in enumerate(rounds, 1):
        tf = seconds(results.get("tensorflow", {}), "")
        jax = seconds(results.get("jax", {}), "")
        lean = seconds(results.get("torch", {}), "lean")
        plain = seconds(results.get("torch", {}), "model(...)")
        rows.append([str(i)] + [f"{v:.1f}" if v else "-" for v in (tf, jax, lean, plain)]
                    + [_bench.fmt_x(v / jax) if v and jax else "-" for v in (lean, plain)])
    print(f"\ncontinual_learning.py ({steps} steps/phase), each backend in its own process, "
          "in turn:")
    print(_bench.markdown_table(header, rows))


if __name__ == "__main__":
    sys.exit(main())
