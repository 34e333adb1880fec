"""Speed of one KANDense layer per Keras backend, against Dense and the bare matmul.

    python benchmarks/layer_speed.py [--quick] [--backends tensorflow,jax,torch]

For each configuration (in, out, grid G, order k, batch) and backend it times

* `KANDense(out, grid_size=G, spline_order=k)`,
* `keras.layers.Dense` with the SAME input width and an output width chosen so
  that it has the same number of trainable parameters (kernel + bias),
* the bare matmul `(batch, in*(K+1)) @ (in*(K+1), out)`, K = G + k: the one
  product KANDense's fast forward performs, i.e. its floor,

in three modes: forward, forward + backward w.r.t. the weights (what a model's
first layer costs in training) and forward + backward w.r.t. weights and input
(a hidden layer; for the matmul the input is the feature matrix). The loss is
`mean(y**2)`. Compiled the way `model.fit` runs: JAX `jax.jit` over
`layer.stateless_call` (`jax.value_and_grad` for the backward),
TensorFlow `tf.function(jit_compile=True)` with `GradientTape`, PyTorch
eager (`--torch-compile` adds a `torch.compile` column; its warm-up takes
about a minute per shape on 2 cores, so it is off by default).

The script re-runs itself once per backend (`KERAS_BACKEND=...`, internal
`--backend` flag, JSON on stdout) and prints one table: each backend's
KANDense time (ms) and its ratios to Dense and to the matmul, as medians of
per-repeat ratios of interleaved measurements.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

CONFIGS = [  # (in, out, grid_size, spline_order, batch)
    (784, 256, 5, 3, 1024),
    (64, 64, 20, 3, 4096),
]
MODES = (("fwd", "forward"), ("bwd_w", "fwd+bwd (weights)"), ("bwd_wx", "fwd+bwd (weights+input)"))


def dense_units(n, params):
    """Output width of a Dense(n -> u, bias) with about `params` parameters."""
    return max(1, round(params / (n + 1)))


def features_layer(kan):
    """A layer computing only KANDense's feature map `x -> (B, n*(K+1))` (no matmul).

    It reuses `KANDense.features` on a copy of the layer's knots, so the basis
    cost can be told apart from the matmul cost.
    """
    import keras
    from keras import ops

    from keras_kan import KANDense

    class KANFeatures(keras.layers.Layer):
        def __init__(self):
            super().__init__(dtype=kan.dtype_policy)
            self.spline_order = kan.spline_order
            self.base_activation = kan.base_activation
            self.grid = self.add_weight(name="grid", shape=kan.grid.shape, trainable=False,
                                        initializer="zeros", autocast=False)
            self.grid.assign(ops.convert_to_numpy(kan.grid))
            self.built = True

        def call(self, x):
            feats = KANDense.features(self, x)
            return ops.reshape(feats, (-1, feats.shape[1] * feats.shape[2]))

    return KANFeatures()


def child(backend, quick, torch_compile):
    import keras
    import numpy as np

    from keras_kan import KANDense

    kit = _bench.Kit(backend)
    Floor = _bench.matmul_layer_class()
    repeats, target = (2, 0.02) if quick else (4, 0.1)
    rng = np.random.default_rng(0)
    out = {"backend": backend, "keras": keras.__version__, "configs": []}
    for n, m, g, k, b in CONFIGS:
        t_cfg = time.perf_counter()
        big_k = g + k
        width = n * (big_k + 1)
        x = rng.uniform(-1, 1, (b, n)).astype("float32")
        feats = rng.uniform(0, 1, (b, width)).astype("float32")
        kan = KANDense(m, grid_size=g, spline_order=k, seed=0)
        kan.build((None, n))
        params = sum(int(np.prod(v.shape)) for v in kan.trainable_variables)
        u = dense_units(n, params)
        dense = keras.layers.Dense(u)
        dense.build((None, n))
        floor = Floor([(width, m)])
        cands = {"kan": (kan, x), "dense": (dense, x), "matmul": (floor, feats)}
        fns = {}
        for name, (layer, arg) in cands.items():
            fns[(name, "fwd")] = kit.forward(layer, arg)
            fns[(name, "bwd_w")] = kit.grad(layer, arg)
            fns[(name, "bwd_wx")] = kit.grad(layer, arg, wrt=[0])
        basis = features_layer(kan)  # no weights: forward, and backward to the input
        fns[("basis", "fwd")] = kit.forward(basis, x)
        fns[("basis", "bwd_wx")] = kit.grad(basis, x, wrt=[0])
        compile_note = None
        if backend == "torch" and torch_compile:
            t0 = time.perf_counter()
            try:
                trial = {
                    ("kan_tc", "fwd"): kit.torch_compiled(kan, x),
                    ("kan_tc", "bwd_w"): kit.torch_compiled(kan, x, backward=True),
                    ("kan_tc", "bwd_wx"): kit.torch_compiled(kan, x, wrt=[0], backward=True),
                }
                for fn in trial.values():
                    fn()
                fns.update(trial)
                compile_note = f"torch.compile warm-up {time.perf_counter() - t0:.0f} s"
            except Exception as e:  # noqa: BLE001 - any failure just drops the column
                compile_note = f"torch.compile failed: {type(e).__name__}: {str(e)[:120]}"
            _bench.log(f"[{backend}] {compile_note}")
        t0 = time.perf_counter()
        keys = list(fns)
        times = _bench.interleaved({i: fns[key] for i, key in enumerate(keys)}, repeats, target,
                                   warmup=1, calibrate=not quick)
        times = {f"{key[0]}/{key[1]}": times[i] for i, key in enumerate(keys)}
        out["configs"].append({
            "in": n, "out": m, "grid": g, "order": k, "batch": b, "params": params,
            "dense_units": u, "dense_params": n * u + u, "matmul": [b, width, m],
            "times": times, "note": compile_note,
            "seconds": round(time.perf_counter() - t_cfg, 1),
        })
        _bench.log(f"[{backend}] config {n}->{m} G={g} B={b}: "
                   f"{time.perf_counter() - t_cfg:.0f} s (timing {time.perf_counter() - t0:.0f} s)")
    return out


def report(results, backends):
    lines = []
    cfgs = next((r["configs"] for r in results.values() if "configs" in r), [])
    for c in cfgs:
        lines.append(
            f"- in={c['in']} out={c['out']} G={c['grid']} k={c['order']} batch={c['batch']}: "
            f"KANDense {c['params']:,} trainable params; Dense({c['in']} -> {c['dense_units']}) "
            f"{c['dense_params']:,}; matmul ({c['matmul'][0]}, {c['matmul'][1]}) @ "
            f"({c['matmul'][1]}, {c['matmul'][2]})"
        )
    header = ["config", "mode"]
    for b in backends:
        s = _bench.SHORT[b]
        header += [f"{s} KAN ms", "×Dense", "×matmul"]
    has_tc = any(
        any("kan_tc/fwd" in c["times"] for c in r.get("configs", [])) for r in results.values()
    )
    if has_tc:
        header += ["Torch compile KAN ms", "×eager"]
    rows = []
    for ci, c in enumerate(cfgs):
        label = f"{c['in']}→{c['out']} G={c['grid']} B={c['batch']}"
        for mode, mode_label in MODES:
            row = [label, mode_label]
            for b in backends:
                r = results.get(b, {})
                if "configs" not in r:
                    row += ["error", "", ""]
                    continue
                t = r["configs"][ci]["times"]
                kan = t[f"kan/{mode}"]
                row += [_bench.fmt_ms(_bench.median(kan)),
                        _bench.fmt_x(_bench.ratio(kan, t[f"dense/{mode}"])),
                        _bench.fmt_x(_bench.ratio(kan, t[f"matmul/{mode}"]))]
            if has_tc:
                t = results.get("torch", {}).get("configs", [{}] * (ci + 1))[ci].get("times", {})
                tc = t.get(f"kan_tc/{mode}")
                row += ([_bench.fmt_ms(_bench.median(tc)),
                         _bench.fmt_x(_bench.ratio(tc, t[f"kan/{mode}"]))]
                        if tc else ["—", "—"])
            rows.append(row)
    lines.append("")
    lines.append(_bench.markdown_table(header, rows))
    lines.append("")
    # Absolute times of the references, for context.
    header2 = ["config", "mode"] + [f"{_bench.SHORT[b]} Dense / matmul / basis ms"
                                    for b in backends]
    rows2 = []
    for ci, c in enumerate(cfgs):
        label = f"{c['in']}→{c['out']} G={c['grid']} B={c['batch']}"
        for mode, mode_label in MODES:
            row = [label, mode_label]
            for b in backends:
                t = results.get(b, {}).get("configs", [{}] * (ci + 1))[ci].get("times")
                if not t:
                    row.append("error")
                    continue
                basis = t.get(f"basis/{mode}")
                row.append(f"{_bench.fmt_ms(_bench.median(t[f'dense/{mode}']))} / "
                           f"{_bench.fmt_ms(_bench.median(t[f'matmul/{mode}']))} / "
                           + (_bench.fmt_ms(_bench.median(basis)) if basis else "—"))
            rows2.append(row)
    lines.append("Reference times. basis = KANDense's feature map alone (B-spline basis + SiLU, "
                 "flattened), no matmul; its backward goes to the input only, so it is timed "
                 "forward and in the weights+input mode.")
    lines.append("")
    lines.append(_bench.markdown_table(header2, rows2))
    for b in backends:
        r = results.get(b, {})
        if "error" in r:
            lines.append(f"- {b}: {r['error']}")
        for c in r.get("configs", []):
            if c.get("note"):
                lines.append(f"- {b}, {c['in']}→{c['out']}: {c['note']}")
    lines.append("")
    lines.append("Times are medians over interleaved repeats; ratios are medians of per-repeat "
                 "ratios (KAN / reference), measured in the same process. Wall time per backend: "
                 + ", ".join(f"{b} {results.get(b, {}).get('wall_s', '?')} s" for b in backends)
                 + f"; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer, shorter repeats (smoke test)")
    p.add_argument("--backends", default=",".join(_bench.BACKENDS),
                   help="comma-separated subset of tensorflow,jax,torch")
    p.add_argument("--torch-compile", action="store_true",
                   help="add a torch.compile column (warm-up takes about a minute per shape)")
    p.add_argument("--backend", help=argparse.SUPPRESS)  # internal: run one backend
    args = p.parse_args()
    if args.backend:
        if os.environ.get("KERAS_BACKEND") != args.backend:
            sys.exit("--backend is internal: the parent sets KERAS_BACKEND to match")
        _bench.emit(child(args.backend, args.quick, args.torch_compile))
        return
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in _bench.BACKENDS:
            p.error(f"unknown backend {b!r}")
    extra = ((["--quick"] if args.quick else [])
             + (["--torch-compile"] if args.torch_compile else []))
    t0 = time.perf_counter()
    results = _bench.run_children(os.path.abspath(__file__), backends, extra, timeout=900)
    print(report(results, backends))
    print(f"\nTotal wall time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
