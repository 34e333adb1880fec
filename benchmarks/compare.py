"""keras_kan KAN models against a same-size MLP, the matmul floor and PyPI peers.

    python benchmarks/compare.py [--defaults] [--quick] [--backends tensorflow,jax,torch]
                                 [--configs 0,1,2,3]

`--defaults`: what a user gets from `model.compile(optimizer="adam", loss="mse")`
with nothing else: Keras resolves `jit_compile="auto"` to a plain `tf.function`
graph on a CPU-only TensorFlow, `jax.jit` on JAX and eager PyTorch. The table
then has the KAN, the KAN after a grid update (non-uniform knots: the general
basis), both again with the paper's penalty on (`kan_pen`, `kan_grid_pen`:
`KANRegularizer(l1=0.01, entropy=0.1)`, with a table of the penalty's cost, on
over off), the MLP and the peers, all compiled that way, and on TensorFlow the
inference of a batch served from SavedModels loaded with `tf.saved_model.load`:
`kan_sm` written by `keras_kan.export_model` (plain TensorFlow ops, what TF
Serving and the LiteRT converter read), `kan_sm_xla` by Keras's
`model.export` (keeps the XLA hints of the spline basis), `mlp_sm` the MLP's.
Without `--defaults`: the compiled settings below.

Per Keras backend (one subprocess each) and configuration it measures

* `kan`: `keras_kan.KAN(width, grid_size=G, spline_order=3)`;
* `mlp`: a `keras.Sequential` Dense MLP (SiLU) of the same depth whose hidden
  widths are the KAN's scaled by one factor so that the trainable parameter
  counts match (kernels + biases);
* `floor`: the bare products `(batch, n_l*(K+1)) @ (n_l*(K+1), m_l)` of all
  layers, K = G + 3 (what KANDense's fast forward cannot avoid); training =
  forward + backward (gradients to every kernel and to every product's input
  but the first), no optimizer; inference = forward;
* `effkan`: `keras_efficient_kan.KANLinear` layers (same G, order 3, SiLU,
  `use_bias=False, use_layernorm=False` to match the KAN architecture), same
  Keras backend, when installed;
* `pykan`: `kan.KAN(width, grid=G, k=3).speed()` (pykan 0.2.8, PyTorch,
  `torch.optim.Adam`), in the PyTorch process only, when installed.

Training step: `model.train_on_batch(x, y)` after warm-up, with
`model.compile(optimizer="adam", loss="mse", jit_compile=...)`: XLA on
TensorFlow, `jax.jit` on JAX, eager on PyTorch (`jit_compile=False`).
Inference: `model.predict_on_batch(x)`. The floor is compiled the same way
(`jax.jit` / `tf.function(jit_compile=True)` / eager). pykan: eager PyTorch
`loss.backward(); opt.step()` and `torch.no_grad()` forward.

Memory: for each model, the peak resident set size (`VmHWM`, reset through
`/proc/self/clear_refs` after `malloc_trim`) during one steady-state
training step and during one inference call, minus the RSS just before the
model was built. So it counts weights, optimizer state, compiled code and the
step's temporaries, not compilation. Theory = the `(batch, n*(K+1))` feature
tensors + weights + layer activations (`batch x sum(width)`), float32; the
training theory adds gradients and Adam's two moments (3 x weights).

For `[2, 5, 1]` it also times one L-BFGS step (pykan's settings: history 10,
strong Wolfe, up to 20 iterations / 25 evaluations, tolerances 1e-32) with
`keras_kan.fit_lbfgs` for the KAN and the MLP, and pykan's own `LBFGS`.

Times are medians over interleaved repeats; ratios are medians of per-repeat
ratios measured in the same process.
"""

import argparse
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

SPLINE_ORDER = 3
CONFIGS = [  # (width, batch, grid_size)
    ([784, 64, 10], 256, 5),
    ([784, 64, 10], 1024, 5),
    ([64, 64, 64, 1], 4096, 20),
    ([2, 5, 1], 1000, 5),
]
MODELS = ("kan", "kan_grid", "kan_pen", "kan_grid_pen", "mlp", "floor", "effkan", "pykan",
          "kan_sm", "kan_sm_xla", "mlp_sm")
# The paper's penalty (pykan lamb=0.01, lamb_entropy=10 = KANRegularizer(l1=0.01, entropy=0.1)).
PENALTY = {"l1": 0.01, "entropy": 0.1}
LBFGS_TOL = 1e-32


def cfg_label(cfg):
    width, batch, grid = cfg
    return f"{width} B={batch} G={grid}"


# ---------------------------------------------------------------- sizes / theory
def kan_params(width, grid):
    big_k = grid + SPLINE_ORDER
    return sum(n * m * (big_k + 2) for n, m in zip(width[:-1], width[1:]))


def mlp_params(width):
    return sum(n * m + m for n, m in zip(width[:-1], width[1:]))


def mlp_width(width, params):
    """Same depth, hidden widths scaled by one factor to match `params`."""
    if len(width) == 2:
        return list(width)
    lo, hi = 1e-3, 1e3
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        trial = [width[0]] + [max(1, round(w * mid)) for w in width[1:-1]] + [width[-1]]
        lo, hi = (mid, hi) if mlp_params(trial) < params else (lo, mid)
    best = None
    for s in (lo, hi):
        trial = [width[0]] + [max(1, round(w * s)) for w in width[1:-1]] + [width[-1]]
        if best is None or abs(mlp_params(trial) - params) < abs(mlp_params(best) - params):
            best = trial
    return best


def floor_shapes(width, grid):
    big_k = grid + SPLINE_ORDER
    return [(n * (big_k + 1), m) for n, m in zip(width[:-1], width[1:])]


def theory_mb(kind, width, batch, grid, mlp_w):
    mb = 4 / 2**20
    if kind.startswith("mlp"):
        weights = mlp_params(mlp_w)
        feats = 0
        acts = batch * sum(mlp_w)
    else:
        weights = kan_params(width, grid)
        feats = sum(batch * r for r, _ in floor_shapes(width, grid))
        acts = batch * sum(width)
    infer = (feats + weights + acts) * mb
    return {"infer": infer, "train": infer + 3 * weights * mb}


# ------------------------------------------------------------------ candidates
def make_candidates(backend, cfg, kit, peers, defaults=False):
    """name -> zero-arg builder returning {"train": fn, "infer": fn, "model": obj}."""
    import keras
    import numpy as np

    import keras_kan

    width, batch, grid = cfg
    rng = np.random.default_rng(0)
    x_np = rng.uniform(-1, 1, (batch, width[0])).astype("float32")
    y_np = (np.sin(np.pi * x_np[:, :1]) + 0.1 * rng.standard_normal((batch, width[-1]))).astype(
        "float32")
    jit = backend != "torch"
    mlp_w = mlp_width(width, kan_params(width, grid))

    def keras_model(model):
        if defaults:
            model.compile(optimizer="adam", loss="mse")
        else:
            model.compile(optimizer="adam", loss="mse", jit_compile=jit)
        x, y = kit.tensors(x_np), kit.tensors(y_np)
        return {"train": lambda: model.train_on_batch(x, y),
                "infer": lambda: model.predict_on_batch(x), "model": model}

    def kan_model(updated=False, penalty=False):
        """The KAN; `updated`: after a grid update (non-uniform knots: the general basis);
        `penalty`: with the paper's penalty on."""
        model = keras_kan.KAN(width, grid_size=grid, spline_order=SPLINE_ORDER, seed=0,
                              regularizer=keras_kan.KANRegularizer(**PENALTY) if penalty
                              else None)
        if updated:
            keras_kan.update_grids(model, x_np)
            if any(layer.uniform_grid for layer in keras_kan.network.kan_layers(model)):
                raise RuntimeError("the grid update left a uniform grid")
        return keras_model(model)

    def kan():
        return kan_model()

    def mlp_model():
        layers = [keras.Input((width[0],))]
        layers += [keras.layers.Dense(w, activation="silu") for w in mlp_w[1:-1]]
        layers.append(keras.layers.Dense(width[-1]))
        return keras.Sequential(layers)

    def mlp():
        return keras_model(mlp_model())

    def saved_model(kind):
        import tensorflow as tf

        def build():
            folder = tempfile.mkdtemp(prefix="kan_bench_sm_")
            if kind == "kan_sm":
                model = keras_kan.KAN(width, grid_size=grid, spline_order=SPLINE_ORDER, seed=0)
                from keras_kan.export import export_model

                path = export_model(model, folder, formats="saved_model", name="m")["saved_model"]
                endpoint = "serving_default"
            else:
                model = (keras_kan.KAN(width, grid_size=grid, spline_order=SPLINE_ORDER, seed=0)
                         if kind == "kan_sm_xla" else mlp_model())
                path = os.path.join(folder, "m")
                model.export(path, format="tf_saved_model", verbose=False)
                endpoint = "serve"
            loaded = tf.saved_model.load(path)
            fn = loaded.signatures[endpoint] if endpoint in loaded.signatures else getattr(
                loaded, endpoint)
            x = tf.constant(x_np)
            return {"infer": lambda: fn(x), "model": loaded}

        return build

    def floor():
        shapes = floor_shapes(width, grid)
        layer = _bench.matmul_layer_class()(shapes)
        feats = [rng.uniform(0, 1, (batch, r)).astype("float32") for r, _ in shapes]
        return {"train": kit.grad(layer, feats, wrt=range(1, len(shapes))),
                "infer": kit.forward(layer, feats), "model": layer}

    def effkan():
        from keras_efficient_kan import KANLinear

        layers = [keras.Input((width[0],))]
        layers += [KANLinear(m, grid_size=grid, spline_order=SPLINE_ORDER, base_activation="silu",
                             use_bias=False, use_layernorm=False) for m in width[1:]]
        return keras_model(keras.Sequential(layers))

    def pykan():
        import torch
        from kan import KAN as PyKAN

        model = PyKAN(width=list(width), grid=grid, k=SPLINE_ORDER, seed=0, auto_save=False,
                      ckpt_path=tempfile.mkdtemp(prefix="pykan_"), device="cpu").speed()
        opt = torch.optim.Adam(model.parameters())
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

        def train():
            opt.zero_grad()
            loss = torch.mean((model(x) - y) ** 2)
            loss.backward()
            opt.step()
            return loss.item()

        def infer():
            with torch.no_grad():
                return model(x)

        return {"train": train, "infer": infer, "model": model, "eager": True}

    if defaults:
        builders = {"kan": kan, "kan_grid": lambda: kan_model(updated=True),
                    "kan_pen": lambda: kan_model(penalty=True),
                    "kan_grid_pen": lambda: kan_model(updated=True, penalty=True), "mlp": mlp}
        if backend == "tensorflow":
            builders.update({name: saved_model(name) for name in ("kan_sm", "kan_sm_xla",
                                                                  "mlp_sm")})
    else:
        builders = {"kan": kan, "mlp": mlp, "floor": floor}
    if "effkan" in peers:
        builders["effkan"] = effkan
    if "pykan" in peers and backend == "torch":
        builders["pykan"] = pykan
    return builders, (x_np, y_np), mlp_w


def find_peers(backend):
    peers, notes = [], {}
    try:
        import keras_efficient_kan  # noqa: F401

        peers.append("effkan")
    except Exception as e:  # noqa: BLE001
        notes["effkan"] = f"keras-efficient-kan not importable ({type(e).__name__}: {e})"
    if backend == "torch":
        try:
            import kan  # noqa: F401

            peers.append("pykan")
        except Exception as e:  # noqa: BLE001
            notes["pykan"] = f"pykan not importable ({type(e).__name__}: {e})"
    return peers, notes


# --------------------------------------------------------------------- L-BFGS
def lbfgs_times(backend, data, cfg, steps, peers):
    """Seconds per L-BFGS step: keras_kan.fit_lbfgs on the KAN and the MLP, pykan's LBFGS."""
    import keras

    import keras_kan

    out, notes = {}, []
    width, batch, grid = cfg
    x_np, y_np = data
    try:
        from keras_kan import fit_lbfgs
    except Exception as e:  # noqa: BLE001
        fit_lbfgs = None
        try:  # not exported yet: the module itself may already be there
            from keras_kan.lbfgs import fit_lbfgs

            notes.append("fit_lbfgs taken from keras_kan.lbfgs (`from keras_kan import "
                         "fit_lbfgs` failed)")
        except Exception:  # noqa: BLE001
            notes.append(f"keras_kan.fit_lbfgs not importable ({type(e).__name__}: {e})")

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    if fit_lbfgs is not None:
        mlp_w = mlp_width(width, kan_params(width, grid))
        models = {
            "kan": keras_kan.KAN(width, grid_size=grid, spline_order=SPLINE_ORDER, seed=0),
            "mlp": keras.Sequential(
                [keras.Input((width[0],))]
                + [keras.layers.Dense(w, activation="silu") for w in mlp_w[1:-1]]
                + [keras.layers.Dense(width[-1])]),
        }
        for name, model in models.items():
            model.compile(optimizer="adam", loss="mse", jit_compile=backend != "torch")
            timer = StepTimer()
            try:
                fit_lbfgs(model, x_np, y_np, steps=steps + 1, verbose=0, callbacks=[timer],
                          tolerance_grad=LBFGS_TOL, tolerance_change=LBFGS_TOL)
                out[name] = timer.times[1:]  # the first step includes compilation
            except Exception as e:  # noqa: BLE001
                notes.append(f"fit_lbfgs failed on {name}: {type(e).__name__}: {str(e)[:100]}")
    if "pykan" in peers and backend == "torch":
        import torch
        from kan import KAN as PyKAN
        from kan.LBFGS import LBFGS

        model = PyKAN(width=list(width), grid=grid, k=SPLINE_ORDER, seed=0, auto_save=False,
                      ckpt_path=tempfile.mkdtemp(prefix="pykan_"), device="cpu").speed()
        opt = LBFGS(model.parameters(), lr=1, history_size=10, line_search_fn="strong_wolfe",
                    tolerance_grad=LBFGS_TOL, tolerance_change=LBFGS_TOL, tolerance_ys=LBFGS_TOL)
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

        def closure():
            opt.zero_grad()
            loss = torch.mean((model(x) - y) ** 2)
            loss.backward()
            return loss

        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            opt.step(closure)
            times.append(time.perf_counter() - t0)
        out["pykan"] = times[1:]
    return out, notes


# ---------------------------------------------------------------------- child
def child(backend, config_ids, quick, defaults=False):
    import gc

    import keras

    kit = _bench.Kit(backend)
    peers, peer_notes = find_peers(backend)
    repeats, target = (2, 0.02) if quick else (4, 0.1)
    result = {"backend": backend, "peers": peers, "notes": list(peer_notes.values()),
              "configs": {}}
    for ci in config_ids:
        cfg = CONFIGS[ci]
        width, batch, grid = cfg
        t_cfg = time.perf_counter()
        builders, data, mlp_w = make_candidates(backend, cfg, kit, peers, defaults)
        fns, single, memory, built = {}, {}, {}, {}
        for name, build in builders.items():
            t0 = time.perf_counter()
            base = _bench.reset_peak()
            try:
                obj = build()
                modes = [mode for mode in ("train", "infer") if mode in obj]
                if not obj.get("eager"):  # compile / warm up (pykan: the first call below)
                    for mode in modes:
                        for _ in range(3 if defaults else 1):  # TF compiles marked ops lazily
                            obj[mode]()
                mem = {}
                for mode in modes:
                    before = _bench.reset_peak()
                    t1 = time.perf_counter()
                    obj[mode]()  # a steady-state call: timed once, and its peak memory
                    single[(name, mode)] = time.perf_counter() - t1
                    if base is not None:
                        peak = _bench.peak_mb()
                        mem[mode] = peak - base
                        mem[mode + "_step"] = peak - before
                memory[name] = mem
                built[name] = obj
                for mode in modes:
                    fns[(name, mode)] = obj[mode]
            except Exception as e:  # noqa: BLE001 - a broken peer must not stop the run
                result["notes"].append(f"{name} on {cfg_label(cfg)} failed: "
                                       f"{type(e).__name__}: {str(e)[:160]}")
            _bench.log(f"[{backend}] {cfg_label(cfg)} {name}: built+warm "
                       f"{time.perf_counter() - t0:.1f} s")
        keys = list(fns)
        reps = repeats
        times = _bench.interleaved({i: fns[k] for i, k in enumerate(keys)}, reps, target,
                                   single={i: single[k] for i, k in enumerate(keys)},
                                   budget_s=4 if quick else 8)
        entry = {
            "width": width, "batch": batch, "grid": grid, "mlp_width": mlp_w,
            "params": {"kan": kan_params(width, grid), "mlp": mlp_params(mlp_w)},
            "times": {f"{k[0]}/{k[1]}": times[i] for i, k in enumerate(keys)},
            "memory": memory,
            "theory": {name: theory_mb(name, width, batch, grid, mlp_w) for name in MODELS},
        }
        if width == [2, 5, 1] and not defaults:
            lb, notes = lbfgs_times(backend, data, cfg, 2 if quick else 3, peers)
            entry["lbfgs"] = lb
            result["notes"] += notes
        entry["seconds"] = round(time.perf_counter() - t_cfg, 1)
        result["configs"][str(ci)] = entry
        _bench.log(f"[{backend}] {cfg_label(cfg)}: {entry['seconds']} s")
        del built, fns, builders
        keras.backend.clear_session()
        gc.collect()
    return result


# --------------------------------------------------------------------- report
def _cell(t, name, mode):
    mine = t[f"{name}/{mode}"]
    cell = _bench.fmt_ms(_bench.median(mine))
    refs = [(ref, t[f"{ref}/{mode}"]) for ref in ("mlp", "floor")
            if ref != name and f"{ref}/{mode}" in t and not (name == "floor" and ref != "mlp")]
    if name != "mlp" and refs:
        cell += " (" + ", ".join(_bench.fmt_x(_bench.ratio(mine, r)) for _, r in refs) + ")"
    return cell


DEFAULT_LABELS = {"tensorflow": "TF (default: tf.function)", "jax": "JAX (default: jit)",
                  "torch": "Torch (default: eager)"}


def report(results, backends, config_ids, defaults=False):
    out = []
    header = ["config", "model"]
    mem_header = ["config", "model"]
    for b in backends:
        s = DEFAULT_LABELS[b] if defaults else _bench.SHORT[b]
        header += [f"{s} train ms (×MLP, ×floor)", f"{s} infer ms (×MLP, ×floor)"]
        mem_header += [f"{s} train: total (step)", f"{s} infer: total (step)"]
    mem_header.append("theory train / infer")
    rows, mem_rows, lbfgs_rows = [], [], []
    for ci in config_ids:
        cfg = CONFIGS[ci]
        for name in MODELS:
            row, mem_row = [cfg_label(cfg), name], [cfg_label(cfg), name]
            theory = None
            for b in backends:
                e = results.get(b, {}).get("configs", {}).get(str(ci))
                if not e or f"{name}/infer" not in e["times"]:
                    row += ["—", "—"]
                    mem_row += ["—", "—"]
                    continue
                theory = e["theory"][name]
                row += [_cell(e["times"], name, mode) if f"{name}/{mode}" in e["times"] else "—"
                        for mode in ("train", "infer")]
                mem = e["memory"].get(name, {})
                for mode in ("train", "infer"):
                    mem_row.append(f"{mem[mode]:.0f} ({mem[mode + '_step']:.0f})"
                                   if mode in mem else "—")
            if theory is None:
                continue
            mem_row.append(f"{theory['train']:.1f} / {theory['infer']:.1f}")
            rows.append(row)
            mem_rows.append(mem_row)
        for b in backends:
            e = results.get(b, {}).get("configs", {}).get(str(ci))
            if e and e.get("lbfgs"):
                lb = e["lbfgs"]
                cells = []
                for name in ("kan", "mlp", "pykan"):
                    if name not in lb:
                        cells.append("—")
                        continue
                    cell = _bench.fmt_ms(_bench.median(lb[name]))
                    if name != "mlp" and "mlp" in lb:
                        ratio = _bench.median(lb[name]) / _bench.median(lb["mlp"])
                        cell += (f" ({_bench.fmt_x(ratio)}"
                                 " MLP)")
                    cells.append(cell)
                lbfgs_rows.append([cfg_label(cfg), _bench.SHORT[b]] + cells)
    penalty_rows = []
    for ci in config_ids:
        for off, on in (("kan", "kan_pen"), ("kan_grid", "kan_grid_pen")):
            cells = []
            for b in backends:
                t = results.get(b, {}).get("configs", {}).get(str(ci), {}).get("times", {})
                cells.append(_bench.fmt_x(_bench.ratio(t[f"{on}/train"], t[f"{off}/train"]))
                             if f"{on}/train" in t and f"{off}/train" in t else "—")
            if any(c != "—" for c in cells):
                penalty_rows.append([cfg_label(CONFIGS[ci]), on] + cells)
    for ci in config_ids:
        e = next((r["configs"][str(ci)] for r in results.values()
                  if str(ci) in r.get("configs", {})), None)
        if e:
            out.append(f"- {cfg_label(CONFIGS[ci])}: KAN {e['params']['kan']:,} trainable "
                       f"params; MLP width {e['mlp_width']} {e['params']['mlp']:,}")
    out += ["", "Time per call, ms (ratio to the MLP, to the matmul floor):", "",
            _bench.markdown_table(header, rows)]
    out += ["", "Peak RSS increase, MB: total = since before the model was built (weights, "
            "optimizer state, compiled code, temporaries); (step) = during one steady-state "
            "call alone. Theory: features + weights + activations, float32 (train: + 3 x "
            "weights for gradients and Adam moments).", "",
            _bench.markdown_table(mem_header, mem_rows)]
    if penalty_rows:
        out += ["", "A training step with the paper's penalty (`KANRegularizer(l1=0.01, "
                "entropy=0.1)`) over the same step without it (median of per-repeat ratios):",
                "", _bench.markdown_table(["config", "model"] + [
                    DEFAULT_LABELS[b] if defaults else _bench.SHORT[b] for b in backends],
                    penalty_rows)]
    if lbfgs_rows:
        out += ["", "L-BFGS, ms per step (up to 20 iterations / 25 evaluations, tolerances "
                "1e-32; first step excluded; not interleaved):", "",
                _bench.markdown_table(["config", "backend", "keras_kan fit_lbfgs KAN",
                                       "fit_lbfgs MLP", "pykan LBFGS (torch)"], lbfgs_rows)]
    notes = []
    for b in backends:
        r = results.get(b, {})
        if "error" in r:
            notes.append(f"- {b}: {r['error']}")
        for n in r.get("notes", []):
            notes.append(f"- {b}: {n}")
    if notes:
        out += [""] + sorted(set(notes), key=notes.index)
    out += ["", "Wall time per backend: " + ", ".join(
        f"{b} {results.get(b, {}).get('wall_s', '?')} s" for b in backends)
        + f"; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}"]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    p.add_argument("--defaults", action="store_true",
                   help="every model compiled with Keras's defaults (what a user gets)")
    p.add_argument("--tuned-malloc", action="store_true",
                   help="run the children with glibc malloc told to keep freed memory "
                        "(MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_): shows what "
                        "fresh pages from the OS cost the eager and JAX steps")
    p.add_argument("--backends", default=",".join(_bench.BACKENDS),
                   help="comma-separated subset of tensorflow,jax,torch")
    p.add_argument("--configs", default=",".join(str(i) for i in range(len(CONFIGS))),
                   help="comma-separated indices: "
                        + "; ".join(f"{i}={cfg_label(c)}" for i, c in enumerate(CONFIGS)))
    p.add_argument("--backend", help=argparse.SUPPRESS)  # internal: run one backend
    args = p.parse_args()
    config_ids = [int(c) for c in args.configs.split(",") if c.strip()]
    for c in config_ids:
        if not 0 <= c < len(CONFIGS):
            p.error(f"unknown config index {c}")
    if args.backend:
        if os.environ.get("KERAS_BACKEND") != args.backend:
            sys.exit("--backend is internal: the parent sets KERAS_BACKEND to match")
        _bench.emit(child(args.backend, config_ids, args.quick, args.defaults))
        return
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in _bench.BACKENDS:
            p.error(f"unknown backend {b!r}")
    extra = (["--quick"] if args.quick else []) + (["--defaults"] if args.defaults else []) + [
        "--configs", ",".join(map(str, config_ids))]
    if args.tuned_malloc:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = os.environ["MALLOC_TRIM_THRESHOLD_"] = str(2**30)
    t0 = time.perf_counter()
    results = _bench.run_children(os.path.abspath(__file__), backends, extra, timeout=1200)
    if args.defaults:
        print("Keras defaults: model.compile(optimizer='adam', loss='mse'), nothing else.\n")
    if args.tuned_malloc:
        print("glibc malloc keeps freed memory (MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_"
              "=2**30).\n")
    print(report(results, backends, config_ids, args.defaults))
    print(f"\nTotal wall time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
