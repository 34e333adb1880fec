import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the property tests skip themselves without hypothesis
    settings = None
if settings is not None:
    # "ci" (the default): the same examples in every run (derandomized, no example
    # database), few enough for about a minute per backend. "dev": a wider search;
    # choose it with HYPOTHESIS_PROFILE=dev.
    settings.register_profile(
        "ci", max_examples=12, derandomize=True, database=None, deadline=None,
        print_blob=True, suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.data_too_large])
    settings.register_profile("dev", max_examples=200, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def to_numpy(x):
    """Backend tensor (gradients or not) -> float64 NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


@pytest.fixture(autouse=True)
def _seed_and_reset():
    keras.utils.set_random_seed(1234)
    yield
    # Reset without reading the global dtype policy first: reading it pins it.
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def float64():
    """floatx and dtype policy float64 (and JAX's x64 mode), restored afterwards."""
    jax_x64 = None
    if BACKEND == "jax":
        import jax

        jax_x64 = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    if jax_x64 is not None:
        import jax

        jax.config.update("jax_enable_x64", jax_x64)


def gradient_of(fn, x):
    """`d fn(x) / dx` for a scalar-valued `fn` of one tensor; NumPy in and out."""
    if BACKEND == "jax":
        import jax

        return to_numpy(jax.grad(fn)(jax.numpy.asarray(x)))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        leaf = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(leaf)
            out = fn(leaf)
        return to_numpy(tape.gradient(out, leaf))
    import torch

    leaf = torch.tensor(x, requires_grad=True)
    fn(leaf).backward()
    return to_numpy(leaf.grad)


@pytest.fixture(scope="session")
def first_example(tmp_path_factory):
    """The README's first example (the canonical run: 20 L-BFGS steps with the paper's
    penalty, prune, 100 more steps, save), executed once per session as printed.

    Returns a dict: the example's namespace (`model`, `x`, `y`, `x_test`, `y_test`, ...),
    `printed` (its standard output) and `path` (the `.keras` file it saved). Tests that
    change the model load their own copy from `path`.
    """
    import contextlib
    import io
    import re

    readme = os.path.join(os.path.dirname(__file__), "..", "README.md")
    text = open(readme, encoding="utf-8").read()
    block = re.search(r"## A first KAN\n\n```python\n(.*?)```", text, re.S).group(1)
    path = str(tmp_path_factory.mktemp("first_example") / "kan.keras")
    assert '"kan.keras"' in block, "the README's example no longer saves kan.keras"
    namespace = {}
    printed = io.StringIO()
    keras.utils.set_random_seed(1234)
    with contextlib.redirect_stdout(printed):
        exec(compile(block.replace('"kan.keras"', repr(path)), "README.md", "exec"), namespace)
    return {**namespace, "printed": printed.getvalue(), "path": path}


class OtherBackends:
    """One long-lived worker process per other backend (`support/backend_worker.py`),
    started on first use: `run(backend, module, function, *args) -> (status, printed)`."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.workers = {}

    def _worker(self, backend):
        import queue
        import subprocess
        import sys
        import threading

        if backend not in self.workers:
            here = os.path.dirname(os.path.abspath(__file__))
            root = os.path.dirname(here)
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                       PYTHONPATH=os.pathsep.join(
                           p for p in (root, os.environ.get("PYTHONPATH")) if p))
            log = open(os.path.join(self.log_dir, f"worker_{backend}.stderr"), "w+")
            process = subprocess.Popen(
                [sys.executable, os.path.join(here, "support", "backend_worker.py")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
            lines = queue.Queue()  # every stdout line; None when the worker exits

            def read():
                for line in process.stdout:
                    lines.put(line)
                lines.put(None)

            threading.Thread(target=read, daemon=True).start()
            self.workers[backend] = (process, log, lines)
        return self.workers[backend]

    def run(self, backend, module, function, *args, timeout=300):
        import json
        import queue
        import time

        process, log, lines = self._worker(backend)
        process.stdin.write(json.dumps({"module": module, "function": function,
                                        "args": [str(a) for a in args]}) + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + timeout
        why = "timed out"
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                why = "exited"
                break
            if line.startswith("REPLY "):
                reply = json.loads(line[len("REPLY "):])
                return reply["rc"], reply["out"]
            # any other line is a library's own printing
        log.flush()
        log.seek(0)
        stderr = log.read()[-3000:]
        self.close(backend)
        raise RuntimeError(f"the {backend} worker {why} in {module}.{function}{args}:\n{stderr}")

    def close(self, backend=None):
        for name in [backend] if backend else list(self.workers):
            process, log, _ = self.workers.pop(name)
            process.stdin.close()
            try:
                process.wait(timeout=30)
            except Exception:  # noqa: BLE001
                process.kill()
            log.close()


@pytest.fixture(scope="session")
def other_backends(tmp_path_factory):
    """Checks on the two other backends, in worker processes kept for the session."""
    backends = OtherBackends(str(tmp_path_factory.mktemp("workers")))
    yield backends
    backends.close()


#: Fixtures that take minutes to set up (trainings, conversions, virtual-device workers,
#: interpreters on other backends): every test that uses one is `slow`, whatever its
#: own time, so that `make test-fast` never pays for the set-up.
EXPENSIVE_FIXTURES = {"first_example", "other_backends", "kinds", "exported", "jax_run",
                      "tf_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if EXPENSIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
