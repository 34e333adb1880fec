"""Train a KAN on several devices: keras.distribution (JAX) or tf.distribute (TensorFlow).

One host, N devices (real accelerators, or N virtual CPU devices to try it out):

    python examples/distributed.py --devices 4                   # JAX (default)
    python examples/distributed.py --devices 2 --backend tensorflow
    python examples/distributed.py --table                       # the README table

Several hosts (JAX): start the same command on every host with its own
`--process-id`; `keras.distribution.initialize` calls
`jax.distributed.initialize` and the mesh then spans every host's devices:

    python examples/distributed.py --coordinator 10.0.0.1:1234 \\
        --num-processes 2 --process-id 0       # on host 0 (1 on host 1)

Each run trains the same KAN (one `GridUpdate`, a `KANRegularizer`) without a
distribution and with each distribution, then reports the time per training
step (after compilation) and the largest difference of the weights from the
single-device run, relative to each weight's largest value.
"""

import argparse
import json
import os
import subprocess
import sys
import time

WIDTH = [32, 64, 8]  # 64 and 8 units: both split evenly over 2, 4 or 8 model devices
GRID_SIZE = 10
GLOBAL_BATCH = 1024
STEPS = 16  # timed steps (one epoch), after one epoch that compiles


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="jax", choices=["jax", "tensorflow"])
    parser.add_argument("--devices", type=int, default=4,
                        help="virtual CPU devices to create (ignored with --coordinator)")
    parser.add_argument("--coordinator", help="host:port of process 0 (several hosts, JAX)")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--table", action="store_true",
                        help="run 2, 4 and 8 JAX devices and 2 TF replicas; print Markdown")
    return parser.parse_args()


def make_data(n=GLOBAL_BATCH * STEPS):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (n, WIDTH[0])).astype("float32")
    w = rng.normal(size=(WIDTH[0], WIDTH[-1])).astype("float32") / np.sqrt(WIDTH[0])
    y = np.sin(np.pi * x) @ w + (x**2) @ w
    return x, y.astype("float32")


def train(x, y):
    """A new KAN trained for 2 epochs; returns (model, median seconds per step of the second)."""
    import keras
    import numpy as np

    import keras_kan

    model = keras_kan.KAN(WIDTH, grid_size=GRID_SIZE, seed=0,
                          regularizer=keras_kan.KANRegularizer(coef=1e-4))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    # Epoch 1 compiles (and moves the grids to the data once); epoch 2 is timed.
    grid_update = keras_kan.callbacks.GridUpdate(x=x[:GLOBAL_BATCH], every=1, stop_after=1)
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[grid_update])
    ends = [time.perf_counter()]
    # float() waits for the step's loss: JAX dispatches steps asynchronously.
    clock = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append(
        (float(logs["loss"]), time.perf_counter())[1]))
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[clock])
    # The median step: robust to other processes sharing the CPU.
    return model, float(np.median(np.diff(ends)))


def max_rel_diff(model, reference):
    import numpy as np

    return max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))
               for a, b in zip(model.get_weights(), reference.get_weights()))


def run_jax(args):
    import keras

    import keras_kan

    if args.coordinator:
        keras.distribution.initialize(job_addresses=args.coordinator,
                                      num_processes=args.num_processes,
                                      process_id=args.process_id)
    devices = keras.distribution.list_devices()
    x, y = make_data()
    reference, seconds = train(x, y)
    rows = [("none (1 device)", 1, seconds, 0.0)]
    n = len(devices)
    model_devices = 2 if n >= 4 else n
    mesh = keras.distribution.DeviceMesh((n // model_devices, model_devices),
                                         ("batch", "model"), devices)
    for label, distribution in (
        (f"DataParallel ({n} devices)", keras.distribution.DataParallel(devices=devices)),
        (f"ModelParallel ({n // model_devices} batch x {model_devices} model)",
         keras.distribution.ModelParallel(
             layout_map=keras_kan.distribution.layout_map(mesh), batch_dim_name="batch")),
    ):
        # Per process: in a multi-host run `fit` takes each process's share of
        # the global batch; here every process trains on all of it (one host).
        with distribution.scope():
            model, seconds = train(x, y)
        rows.append((label, n, seconds, max_rel_diff(model, reference)))
    return rows


def run_tensorflow(args):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(args.devices)])
    x, y = make_data()
    reference, seconds = train(x, y)
    rows = [("none (1 device)", 1, seconds, 0.0)]
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.devices)])
    with strategy.scope():
        model, seconds = train(x, y)
    rows.append((f"MirroredStrategy ({args.devices} replicas)", args.devices, seconds,
                 max_rel_diff(model, reference)))
    return rows


def table():
    """Runs every configuration in its own process (device counts are fixed at start)."""
    print(f"KAN {WIDTH}, G={GRID_SIZE}, global batch {GLOBAL_BATCH}, Adam, "
          f"{STEPS} timed steps (median)\n")
    print("| backend | distribution | devices | global batch | ms / step | max weight diff |")
    print("|---|---|---|---|---|---|")
    for backend, devices in (("jax", 2), ("jax", 4), ("jax", 8), ("tensorflow", 2)):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([sys.executable, __file__, "--backend", backend,
                               "--devices", str(devices)], env=env, capture_output=True,
                              text=True, check=True)
        for label, n, seconds, diff in json.loads(done.stdout.strip().splitlines()[-1]):
            print(f"| {backend} | {label} | {n} | {GLOBAL_BATCH} | {seconds * 1e3:.1f} | "
                  f"{diff:.1e} |")


def main():
    args = parse()
    if args.table:
        return table()
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.backend == "jax" and not args.coordinator:
        # Before JAX starts: split the host CPU into virtual devices.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.devices}")
    rows = run_jax(args) if args.backend == "jax" else run_tensorflow(args)
    for label, n, seconds, diff in rows:
        print(f"{label:45s} devices={n} step={seconds * 1e3:8.1f} ms  "
              f"max weight diff={diff:.1e}", file=sys.stderr)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
