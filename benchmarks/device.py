"""Step time and peak device memory per backend, for a GPU (or, with --quick, the CPU).

    python benchmarks/device.py [--quick] [--backends tensorflow,jax,torch] [--budget 480]

Per backend, each in its own process (so one backend's allocator never sees
another's), on the first accelerator the backend finds (else the CPU):

* a training step (`train_on_batch`, Keras's default `compile()`, Adam, MSE) of
  the KAN, the KAN after `keras_kan.update_grids` (adapted knots: the general
  basis), an MLP with as many parameters (`compare.mlp_width`), and
  efficient-kan (`keras-efficient-kan`'s `KANLinear`; it has no grid update, so
  its "after update_grids" row is n/a) at `[784, 64, 10]`, B = 1024, G = 5 and
  `[64, 64, 64, 1]`, B = 4096, G = 20 (`--quick`: B = 256 and 512);
* the Poisson protocol of `examples/poisson.py` (`[2, 2, 1]`, 51x51 mesh, grids
  5, 10, 20, 50 L-BFGS steps each; `--quick`: a 21x21 mesh,
  grids 5 and 10, 5 steps each): seconds and the mesh MSE of each grid;
* the canonical run (examples/quickstart.py's training, as
  `benchmarks/pykan_workflow.py` runs it: 20 steps with the penalty, prune, 100
  steps; `--quick`: 5 and 10): seconds per stage, test RMSE, pruned width.

Peak device memory of each row: PyTorch `torch.cuda.max_memory_allocated`
(reset before the row), TensorFlow `get_memory_info('GPU:0')['peak']` (reset
with `reset_memory_stats`), JAX `memory_stats()['peak_bytes_in_use']`, which
cannot be reset: JAX's figure is the process's peak up to that row, so the rows
run smallest first. On the CPU there is no device memory: the table says
"n/a (CPU)" and gives the process's resident-set growth during the row
(`_bench.reset_peak` / `peak_mb`), labelled RSS.

Each backend gets `--budget / len(backends)` seconds (default 480 s, the 8
minutes a GPU run may take; 1200 s with `--quick`, for a loaded CPU); a section
that would start past its backend's budget is skipped and named in the notes.
"""

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
import _bench  # noqa: E402
import compare  # noqa: E402

CONFIGS = [([784, 64, 10], 1024, 5), ([64, 64, 64, 1], 4096, 20)]
QUICK_BATCH = {1024: 256, 4096: 512}
MODELS = {"kan": "KAN", "kan_grid": "KAN after update_grids", "mlp": "MLP (equal params)",
          "effkan": "efficient-kan", "effkan_grid": "efficient-kan after update_grids"}


class DeviceMemory:
    """Peak memory of the backend's first accelerator, or the process RSS on the CPU."""

    def __init__(self, backend):
        self.backend = backend
        self.device = "cpu"
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                self.device = torch.cuda.get_device_name(0)
        elif backend == "jax":
            import jax

            dev = jax.devices()[0]
            if dev.platform != "cpu":
                self.device, self._jax = dev.device_kind, dev
        else:
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                self.device = tf.config.experimental.get_device_details(
                    tf.config.list_physical_devices("GPU")[0]).get("device_name", "GPU:0")
        self.gpu = self.device != "cpu"
        self._base = None

    def reset(self):
        if not self.gpu:
            self._base = _bench.reset_peak()
        elif self.backend == "torch":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        elif self.backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats("GPU:0")

    def peak(self):
        """`(MB or None, kind)`: kind "device" or "RSS" (CPU: growth of the resident set)."""
        if not self.gpu:
            if self._base is None:
                return None, "RSS"
            return _bench.peak_mb() - self._base, "RSS"
        if self.backend == "torch":
            import torch

            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20, "device"
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, "device"
        stats = self._jax.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return (peak / 2**20 if peak is not None else None), "device (process peak)"


def _steps(backend, kit, memory, quick, result, deadline):
    peers, notes = compare.find_peers(backend)
    result["notes"] += list(notes.values())
    for width, batch, grid in CONFIGS:
        batch = QUICK_BATCH[batch] if quick else batch
        label = f"{width} B={batch} G={grid}"
        if time.perf_counter() > deadline:
            result["notes"].append(f"{label}: skipped (over this backend's time budget)")
            continue
        builders, _, _ = compare.make_candidates(backend, (width, batch, grid), kit, peers,
                                                 defaults=True)
        fns, single = {}, {}
        for name in MODELS:
            row = result["rows"].setdefault(f"{label} · {MODELS[name]}", {})
            if name == "effkan_grid":
                row["note"] = "n/a: keras-efficient-kan 0.1.10 has no grid update"
                continue
            if name not in builders:
                row["note"] = notes.get("effkan", f"{name} not available")
                continue
            try:
                memory.reset()
                obj = builders[name]()
                for _ in range(3):  # compile, and TF's lazily compiled marked ops
                    obj["train"]()
                t0 = time.perf_counter()
                obj["train"]()
                single[name] = time.perf_counter() - t0
                row["memory"], row["memory_kind"] = memory.peak()
                fns[name] = obj["train"]
            except Exception as e:  # noqa: BLE001 - a broken peer must not stop the run
                row["note"] = f"failed: {type(e).__name__}: {str(e)[:120]}"
        times = _bench.interleaved(fns, 2 if quick else 4, 0.05 if quick else 0.2,
                                   single=single, budget_s=3 if quick else 10)
        for name, values in times.items():
            result["rows"][f"{label} · {MODELS[name]}"]["step_s"] = _bench.median(values)
        _bench.log(f"[{backend}] {label}: " + ", ".join(
            f"{n} {_bench.fmt_ms(_bench.median(v))} ms" for n, v in times.items()))


def _poisson(memory, quick, result):
    import poisson

    n, grids, steps = (21, (5, 10), 5) if quick else (51, (5, 10, 20), 50)
    mesh, boundary, source = poisson.problem(n)
    memory.reset()
    start = time.perf_counter()
    _, rows = poisson.train_kan(mesh, boundary, source, grids, steps, seed=1)
    seconds = time.perf_counter() - start
    mem, kind = memory.peak()
    result["rows"][f"Poisson [2,2,1] {n}x{n}, grids {list(grids)} x {steps} steps"] = {
        "seconds": seconds, "memory": mem, "memory_kind": kind,
        "note": "mesh MSE per grid " + ", ".join(f"{g}: {m:.2e}" for g, m, _ in rows)}


def _canonical(backend, memory, quick, result):
    import pykan_workflow

    if quick:
        pykan_workflow.STAGE1, pykan_workflow.STAGE2 = 5, 10
    path = os.path.join(tempfile.mkdtemp(prefix="kan_device_"), "data.npz")
    pykan_workflow.make_data(path)
    memory.reset()
    run = pykan_workflow.child(backend, path)
    mem, kind = memory.peak()
    result["rows"][f"canonical run ({pykan_workflow.STAGE1} + {pykan_workflow.STAGE2} "
                   "steps)"] = {
        "seconds": run["stage1"] + run["stage2"], "memory": mem, "memory_kind": kind,
        "note": f"stage 1 {run['stage1']:.1f} s, stage 2 {run['stage2']:.1f} s, "
                f"test RMSE {run['rmse']:.1e}, width {run['width']}"}


def child(backend, quick, budget):
    start = time.perf_counter()
    deadline = start + budget
    import keras

    kit = _bench.Kit(backend)
    memory = DeviceMemory(backend)
    result = {"backend": backend, "device": memory.device, "rows": {}, "notes": []}
    # Smallest first: JAX's device peak cannot be reset (see the module docstring).
    sections = [("canonical run", lambda: _canonical(backend, memory, quick, result)),
                ("Poisson protocol", lambda: _poisson(memory, quick, result)),
                ("training steps", lambda: _steps(backend, kit, memory, quick, result,
                                                  deadline))]
    for name, run in sections:
        if time.perf_counter() > deadline:
            result["notes"].append(f"{name}: skipped (over this backend's time budget)")
            continue
        t0 = time.perf_counter()
        try:
            run()
        except Exception as e:  # noqa: BLE001 - report and go on with the next section
            result["notes"].append(f"{name} failed: {type(e).__name__}: {str(e)[:160]}")
        _bench.log(f"[{backend}] {name}: {time.perf_counter() - t0:.1f} s")
        keras.backend.clear_session()
    result["seconds"] = time.perf_counter() - start
    return result


def _memory_cell(row):
    mem, kind = row.get("memory"), row.get("memory_kind", "")
    if mem is None:
        return "-"
    if kind == "RSS":
        return f"n/a (CPU); RSS +{mem:.0f} MB"
    return f"{mem:.0f} MB" + (" (process peak)" if "process" in kind else "")


def report(results):
    for backend, res in results.items():
        if "error" in res:
            print(f"{backend}: {res['error']}\n")
            continue
        print(f"### {backend} on {res['device']} ({res['seconds']:.0f} s)\n")
        rows = []
        for name, row in res["rows"].items():
            if "step_s" in row:
                time_cell = f"{_bench.fmt_ms(row['step_s'])} ms/step"
            elif "seconds" in row:
                time_cell = f"{row['seconds']:.1f} s"
            else:
                time_cell = "-"
            rows.append([name, time_cell, _memory_cell(row), row.get("note", "")])
        print(_bench.markdown_table(["workload", "time", "peak memory", "note"], rows))
        for note in res.get("notes", []):
            print(f"note: {note}")
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(_bench.BACKENDS))
    parser.add_argument("--quick", action="store_true",
                        help="smaller batches and protocols, for a CPU (a few minutes)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all backends together (default 480; --quick: 1200)")
    args = parser.parse_args()
    if args.budget is None:
        args.budget = 1200.0 if args.quick else 480.0
    if args.backend:
        _bench.emit(child(args.backend, args.quick, args.budget))
        return 0
    backends = args.backends.split(",")
    per_backend = args.budget / len(backends)
    extra = ["--budget", str(per_backend)] + (["--quick"] if args.quick else [])
    # The budget is checked between sections; the timeout only catches a hung child.
    results = _bench.run_children(os.path.abspath(__file__), backends, extra,
                                  timeout=int(2 * per_backend + 120))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
