"""Ship the quickstart KAN: TF Serving SavedModel, LiteRT (float, dynamic, int8) and ONNX.

Trains the quickstart model (f(x, y) = exp(cos(pi x) + y^2), a [2, 5, 1] KAN,
L-BFGS with grid updates, pruned; fewer steps than `examples/quickstart.py`),
writes every format under saved_models/export/, runs each file with its real
runtime (`tf.saved_model.load`, the LiteRT `Interpreter`, onnxruntime) and
prints: format, size, max |error| against Keras on the 200 test points, and
the latency of a batch of 1 and of 1024 (median of repeated calls).

On TensorFlow the model is exported in this process; on JAX or PyTorch it is
saved as `.keras` and exported by `python -m keras_kan.export` in a TensorFlow
subprocess, the path for models trained on those backends.

Run: `python examples/deploy.py` (TensorFlow) or `KERAS_BACKEND=jax python examples/deploy.py`.
Needs the `export` extra: `pip install keras-kan[export]`.
"""

import os
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_kan import KAN, KANRegularizer, fit_lbfgs, prune  # noqa: E402
from keras_kan.datasets import create_dataset  # noqa: E402
from keras_kan.export import export_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "saved_models", "export")
NAME = "quickstart"


def train():
    train, test = create_dataset(lambda v: np.exp(np.cos(np.pi * v[:, 0]) + v[:, 1] ** 2),
                                 n_var=2, n_samples=1000, ranges=(0, 1), seed=0, test_split=0.2)
    model = KAN([2, 5, 1], grid_size=5, spline_order=3, seed=0,
                regularizer=KANRegularizer(l1=0.01, entropy=0.1))
    model.compile(loss="mse")
    fit_lbfgs(model, *train, steps=20, update_grid=True, verbose=0)
    model = prune(model, train[0], verbose=False)
    for layer in model.layers:
        layer.regularizer = None
    fit_lbfgs(model, *train, steps=30, update_grid=True, verbose=0)
    return model, train, test


def export(model, calibration):
    if keras.backend.backend() == "tensorflow":
        return export_model(model, OUT, quantize=("dynamic", "int8"), calibration=calibration,
                            name=NAME, overwrite=True)
    # JAX / PyTorch: the `.keras` file goes through the command line under TensorFlow.
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{NAME}.keras")
    data = os.path.join(OUT, "calibration.npy")
    model.save(path)
    np.save(data, calibration)
    command = [sys.executable, "-m", "keras_kan.export", path, OUT, "--name", NAME,
               "--quantize", "dynamic", "--quantize", "int8", "--calibration", data,
               "--overwrite"]
    env = dict(os.environ, KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    print("$ KERAS_BACKEND=tensorflow python -m keras_kan.export", " ".join(command[3:]))
    subprocess.run(command, env=env, check=True)
    return {"saved_model": os.path.join(OUT, NAME, "1"),
            "litert": os.path.join(OUT, f"{NAME}.tflite"),
            "litert_dynamic": os.path.join(OUT, f"{NAME}_dynamic.tflite"),
            "litert_int8": os.path.join(OUT, f"{NAME}_int8.tflite"),
            "onnx": os.path.join(OUT, f"{NAME}.onnx")}


def runner(kind, path, batch):
    """A function ``x (batch, n) float32 -> outputs`` that runs ``path`` in its runtime."""
    if kind == "saved_model":
        import tensorflow as tf

        serve = tf.saved_model.load(path).signatures["serving_default"]
        return lambda x: serve(inputs=tf.constant(x))["outputs"].numpy()
    if kind.startswith("litert"):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path)
        inp = interpreter.get_input_details()[0]["index"]
        out = interpreter.get_output_details()[0]["index"]
        interpreter.resize_tensor_input(inp, (batch, interpreter.get_input_details()[0]
                                              ["shape_signature"][1]))
        interpreter.allocate_tensors()

        def run(x):
            interpreter.set_tensor(inp, x)
            interpreter.invoke()
            return interpreter.get_tensor(out)

        return run
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["outputs"], {"inputs": x})[0]


def latency(fn, x, repeats):
    fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


def main():
    start = time.perf_counter()
    print(f"keras_kan deploy on the {keras.backend.backend()} backend")
    model, train_data, test = train()
    x_test = test[0].astype("float32")
    want = keras.ops.convert_to_numpy(model(x_test)).astype(np.float64)
    print(f"trained: widths {[2] + [layer.units for layer in model.layers]}, test RMSE "
          f"{np.sqrt(np.mean((want - test[1]) ** 2)):.2e}")
    written = export(model, train_data[0].astype("float32"))

    big = np.random.default_rng(0).uniform(0, 1, (1024, 2)).astype("float32")
    rows = [("keras (" + keras.backend.backend() + ")", None, 0.0,
             latency(lambda x: keras.ops.convert_to_numpy(model(x)), big[:1], 50),
             latency(lambda x: keras.ops.convert_to_numpy(model(x)), big, 10))]
    for kind, path in written.items():
        got = runner(kind, path, len(x_test))(x_test)
        error = float(np.max(np.abs(got.astype(np.float64) - want)))
        rows.append((kind, size(path), error, latency(runner(kind, path, 1), big[:1], 50),
                     latency(runner(kind, path, 1024), big, 10)))
    print(f"\n{'format':<16} {'size':>9} {'max |err|':>10} {'batch 1':>9} {'batch 1024':>11}")
    for kind, nbytes, error, one, many in rows:
        shown = "" if nbytes is None else f"{nbytes / 1024:.1f} KiB"
        print(f"{kind:<16} {shown:>9} {error:>10.1e} {one * 1e3:>7.2f}ms {many * 1e3:>9.2f}ms")
    print(f"\nwritten under {os.path.relpath(OUT)}; total time {time.perf_counter() - start:.1f} s")
    bad = [r[0] for r in rows[1:] if r[0] != "litert_int8" and r[2] > 1e-5 * np.abs(want).max()]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
