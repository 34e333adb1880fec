"""Shared helpers for the benchmark scripts in this folder (not part of keras_kan).

* `run_children`: re-run a script once per Keras backend in a subprocess
  (`KERAS_BACKEND=...`) and collect the JSON it prints.
* `Kit`: per-backend compiled forward / forward+backward callables for a Keras
  layer, compiled the way `model.fit` compiles: JAX `jax.jit` over
  `layer.stateless_call`, TensorFlow `tf.function(jit_compile=True)` with a
  `GradientTape`, PyTorch eager autograd.
* `interleaved`: time several callables by alternating them, repeat by repeat,
  so a slow phase of a noisy machine hits all of them alike; ratios are medians
  of the per-repeat ratios.
* memory: current and peak resident set size from `/proc/self/status`; the
  peak is reset with `/proc/self/clear_refs` (Linux >= 4.0) after returning
  freed heap pages to the OS with `malloc_trim`.
"""

import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time

MARK = "@@BENCH_JSON@@ "
BACKENDS = ("tensorflow", "jax", "torch")
SHORT = {"tensorflow": "TF (XLA)", "jax": "JAX (jit)", "torch": "Torch (eager)"}


# ---------------------------------------------------------------- subprocesses
def run_children(script, backends, args, timeout):
    """Runs `script --backend B *args` per backend; returns {backend: result dict}.

    The child's stderr (progress lines) passes through; its stdout is scanned for
    one line starting with `MARK` holding the JSON result.
    """
    results = {}
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   PYTHONWARNINGS="ignore")
        # OpenMP threads that spin while waiting (the default) make PyTorch's small
        # eager ops 10-100x slower when other processes share the cores; passive
        # waiting keeps the numbers meaningful on a busy machine. Override by
        # setting OMP_WAIT_POLICY yourself.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, script, "--backend", backend, *args], env=env,
                stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            results[backend] = {"error": f"timed out after {timeout} s"}
            continue
        payload = [line[len(MARK):] for line in proc.stdout.splitlines() if line.startswith(MARK)]
        if payload:
            results[backend] = json.loads(payload[-1])
        else:
            tail = proc.stdout.strip().splitlines()[-3:]
            results[backend] = {"error": f"exit {proc.returncode}; no result ({' | '.join(tail)})"}
        results[backend]["wall_s"] = round(time.perf_counter() - t0, 1)
        log(f"[{backend}] done in {results[backend]['wall_s']} s")
    return results


def emit(result):
    print(MARK + json.dumps(result), flush=True)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------- timing
def interleaved(fns, repeats, target_s=0.1, warmup=1, single=None, calibrate=True,
                budget_s=None):
    """Times every callable in `fns` (name -> no-arg blocking callable).

    Each is warmed up (`warmup` calls), then called `n` times per repeat
    (`n` sized so one repeat takes about `target_s`, from one timed call or
    from `single[name]`, seconds per call, when given); the repeats of all
    callables alternate, in a rotating order. `calibrate=False`: `n = 1`
    without the timed call. `budget_s`: a callable slower than
    `budget_s / repeats` per call gets fewer repeats (at least 2), about
    `budget_s` in all. Returns {name: [seconds per call, one per repeat]}.
    """
    single = dict(single or {})
    inner = {}
    for name, fn in fns.items():
        if name not in single:
            for _ in range(warmup):
                fn()
            if calibrate:
                t0 = time.perf_counter()
                fn()
                single[name] = time.perf_counter() - t0
            else:
                single[name] = float("inf")
        inner[name] = max(1, min(1000, int(round(target_s / max(single[name], 1e-6)))))
    limit = {name: repeats for name in fns}
    if budget_s:
        for name in fns:
            if single[name] != float("inf"):
                limit[name] = min(repeats, max(2, int(budget_s / max(single[name], 1e-6))))
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            if r >= limit[name]:
                continue
            fn, n = fns[name], inner[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n)
    return times


def median(values):
    return statistics.median(values) if values else float("nan")


def ratio(a, b):
    """Median over repeats of a[r] / b[r] (paired: same repeat, same machine state)."""
    if not a or not b:
        return float("nan")
    n = min(len(a), len(b))
    return statistics.median(x / y for x, y in zip(a[:n], b[:n]))


# --------------------------------------------------------------------- memory
_LIBC = None


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # MB
    return float("nan")


def rss_mb():
    return _status("VmRSS")


def peak_mb():
    return _status("VmHWM")


def reset_peak():
    """Frees what can be freed, then resets the peak RSS to the current RSS.

    Returns the current RSS in MB (the baseline for a following `peak_mb()`),
    or None when the kernel does not allow resetting the peak.
    """
    global _LIBC
    gc.collect()
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL("libc.so.6")
        _LIBC.malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return rss_mb()


# ------------------------------------------------------------- backend kit
def _pack_list(xs):
    return list(xs)


def _pack_single(xs):
    return xs[0]


class Kit:
    """Compiled forward and forward+backward callables for a Keras layer.

    `args` is the layer's single call argument (a tensor or a list of tensors,
    as NumPy arrays); `wrt` lists the indices (into the flattened `args`) of
    the inputs that also get a gradient. The loss is `sum(mean(y**2))` over the
    layer's outputs. Gradients are taken with respect to the layer's trainable
    variables (plus `wrt` inputs). Each callable blocks until its result is
    ready.
    """

    def __init__(self, backend):
        self.backend = backend
        import keras  # noqa: F401

        if backend == "jax":
            import jax

            self.jax = jax
        elif backend == "tensorflow":
            import tensorflow as tf

            self.tf = tf
        elif backend == "torch":
            import torch

            self.torch = torch

    def tensors(self, arrays):
        from keras import ops

        if isinstance(arrays, (list, tuple)):
            return [ops.convert_to_tensor(a) for a in arrays]
        return ops.convert_to_tensor(arrays)

    @staticmethod
    def _loss(outputs):
        from keras import ops

        outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return sum(ops.mean(ops.square(o)) for o in outs)

    # -- forward only (inference)
    def forward(self, layer, args):
        x = self.tensors(args)
        if self.backend == "jax":
            jax = self.jax
            tv = [v.value for v in layer.trainable_variables]
            ntv = [v.value for v in layer.non_trainable_variables]
            fn = jax.jit(lambda tv, ntv, x: layer.stateless_call(tv, ntv, x)[0])
            return lambda: jax.block_until_ready(fn(tv, ntv, x))
        if self.backend == "tensorflow":
            def call(x):
                return layer(x)

            fn = self.tf.function(call, jit_compile=True)
            return lambda: fn(x)
        torch = self.torch

        def run():
            with torch.no_grad():
                return layer(x)

        return run

    # -- forward + backward
    def grad(self, layer, args, wrt=()):
        is_list = isinstance(args, (list, tuple))
        x = self.tensors(args)
        xs = list(x) if is_list else [x]
        wrt = list(wrt)
        pack = _pack_list if is_list else _pack_single
        loss_of = self._loss
        if self.backend == "jax":
            jax = self.jax
            tv = [v.value for v in layer.trainable_variables]
            ntv = [v.value for v in layer.non_trainable_variables]
            fixed = [a for i, a in enumerate(xs) if i not in wrt]
            moving = [xs[i] for i in wrt]

            def loss(tv, moving, ntv, fixed):
                it_m, it_f = iter(moving), iter(fixed)
                full = [next(it_m) if i in wrt else next(it_f) for i in range(len(xs))]
                return loss_of(layer.stateless_call(tv, ntv, pack(full))[0])

            fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
            return lambda: jax.block_until_ready(fn(tv, moving, ntv, fixed))
        if self.backend == "tensorflow":
            tf = self.tf
            variables = layer.trainable_variables

            @tf.function(jit_compile=True)
            def step(xs):
                with tf.GradientTape() as tape:
                    for i in wrt:
                        tape.watch(xs[i])
                    value = loss_of(layer(pack(xs)))
                return value, tape.gradient(value, list(variables) + [xs[i] for i in wrt])

            return lambda: step(xs)
        torch = self.torch
        params = [v.value for v in layer.trainable_variables]
        leaves = [a.detach().requires_grad_(i in wrt) for i, a in enumerate(xs)]
        targets = params + [leaves[i] for i in wrt]

        def run():
            value = loss_of(layer(pack(leaves)))
            return value, torch.autograd.grad(value, targets)

        return run

    def torch_compiled(self, layer, args, wrt=(), backward=False):
        """torch.compile'd variant of `forward` / `grad` (PyTorch only)."""
        torch = self.torch
        is_list = isinstance(args, (list, tuple))
        xs = self.tensors(args)
        xs = list(xs) if is_list else [xs]
        pack = _pack_list if is_list else _pack_single
        loss_of = self._loss
        if not backward:
            fn = torch.compile(lambda *xs: layer(pack(xs)))

            def run():
                with torch.no_grad():
                    return fn(*xs)

            return run
        params = [v.value for v in layer.trainable_variables]
        leaves = [a.detach().requires_grad_(i in wrt) for i, a in enumerate(xs)]
        targets = params + [leaves[i] for i in wrt]
        fwd = torch.compile(lambda *xs: loss_of(layer(pack(xs))))

        def run():
            value = fwd(*leaves)
            return value, torch.autograd.grad(value, targets)

        return run


def matmul_layer_class():
    """A Keras layer holding only the effective kernels: `[F_l] -> [F_l @ W_l]`.

    Built from a list of `(rows, cols)` kernel shapes; its call takes one
    tensor (one kernel) or a list (one per kernel). It is the floor of a KAN
    layer: the one matmul its fast forward cannot avoid.
    """
    import keras
    from keras import ops

    class MatmulFloor(keras.layers.Layer):
        def __init__(self, shapes, **kwargs):
            super().__init__(**kwargs)
            self.shapes = [tuple(s) for s in shapes]
            self.kernels = [
                self.add_weight(name=f"w{i}", shape=s, initializer="glorot_uniform")
                for i, s in enumerate(self.shapes)
            ]
            self.built = True

        def call(self, inputs):
            if isinstance(inputs, (list, tuple)):
                return [ops.matmul(f, w) for f, w in zip(inputs, self.kernels)]
            return ops.matmul(inputs, self.kernels[0])

    return MatmulFloor


# ------------------------------------------------------------------ tables
def markdown_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def fmt_ms(seconds):
    if seconds is None or seconds != seconds:
        return "—"
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def fmt_x(value):
    if value is None or value != value:
        return "—"
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"
