"""Training past one device: keras.distribution on JAX, tf.distribute on TensorFlow.

Device counts are fixed when a runtime starts, so the distributed runs happen
in fresh subprocesses on virtual CPU devices (`distributed_jax.py`: 4 JAX
devices; `distributed_tf.py`: 2 logical TensorFlow CPUs), each comparing the
distributed run with the same run on one device and printing what it
measured. The assertions are here. Each runs once, under the backend it
needs; the `.keras` file it writes is then loaded on another backend.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_kan

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKEND = keras.backend.backend()


def run_worker(script, backend, out_dir, **env):
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                       PYTHONPATH=os.pathsep.join(
                           p for p in (ROOT, os.environ.get("PYTHONPATH")) if p), **env)
    done = subprocess.run([sys.executable, os.path.join(HERE, "support", script), str(out_dir)],
                          env=environment, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, f"{script} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULTS "):])


def crossload(other_backends, backend, out_dir, name):
    """Load OUT_DIR/name on `backend` (a worker process); compare with OUT_DIR/io.npz."""
    status, printed = other_backends.run(backend, "crossload", "main",
                                         os.path.join(out_dir, name),
                                         os.path.join(out_dir, "io.npz"))
    assert status == 0, f"loading on {backend} failed:\n{printed}"


# --- layout_map: the keys (any backend, no devices needed) ---------------------------


def mesh(shape=(2, 2), names=("batch", "model")):
    devices = [f"cpu:{i}" for i in range(int(np.prod(shape)))]
    return keras.distribution.DeviceMesh(shape, names, devices)


def test_layout_map_shards_per_edge_weights_by_unit():
    layouts = keras_kan.distribution.layout_map(mesh())
    for path in ("kan/kan_dense_0/spline_kernel", "kan_dense_3/spline_kernel",
                 "outer/inner/wide/spline_kernel"):
        assert layouts[path].axes == (None, None, "model")
    for name in ("base_kernel", "spline_scale", "edge_mask"):
        assert layouts[f"kan/kan_dense_1/{name}"].axes == (None, "model")
    assert layouts["kan/kan_dense_1/grid"].axes == (None,)  # replicated
    assert layouts["kan/kan_dense_1/bias"] is None  # the distribution's default: replicated
    assert layouts["dense/kernel"] is None
    assert layouts["kan/kan_dense_0/spline_kernel"].device_mesh.shape == (2, 2)


def test_layout_map_only_named_layers():
    layouts = keras_kan.distribution.layout_map(mesh((1, 2), ("data", "units")),
                                                model_axis="units", layers=["hidden.1"])
    assert layouts["kan/hidden.1/base_kernel"].axes == (None, "units")
    assert layouts["kan/hidden.1/grid"].axes == (None,)
    assert layouts["kan/hiddenX1/base_kernel"] is None  # names are literal, not regexes
    assert layouts["kan/out/base_kernel"] is None


@pytest.mark.parametrize("kwargs, match", [
    ({"device_mesh": "mesh"}, "device_mesh"),
    ({"model_axis": "units"}, "model_axis"),
    ({"layers": "kan_dense_0"}, "layers"),
    ({"layers": []}, "layers"),
])
def test_layout_map_arguments(kwargs, match):
    arguments = {"device_mesh": mesh(), **kwargs}
    with pytest.raises(ValueError, match=match):
        keras_kan.distribution.layout_map(**arguments)


# --- JAX: keras.distribution on 4 virtual devices ------------------------------------


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    if BACKEND != "jax":
        pytest.skip("keras.distribution runs on the JAX backend (run once, under JAX)")
    out = tmp_path_factory.mktemp("distributed_jax")
    return out, run_worker("distributed_jax.py", "jax", out,
                           XLA_FLAGS="--xla_force_host_platform_device_count=4")


DISTRIBUTIONS = ("data_parallel", "model_parallel")
SHARDED = {"spline_kernel": [None, None, "model"], "base_kernel": [None, "model"],
           "spline_scale": [None, "model"], "edge_mask": [None, "model"], "grid": [None],
           **{name: [None, "model"] for name in ("symbolic_mask", "symbolic_a", "symbolic_b",
                                                 "symbolic_c", "symbolic_d")}}


def expected_spec(name, path):
    """The partition spec a variable must have: hidden layer split by unit, all else replicated."""
    weight = path.rsplit("/", 1)[1]
    if name == "model_parallel" and "kan_dense_0/" in path:
        return SHARDED[weight]
    return None


def check_specs(name, variables):
    assert variables, "no variables reported"
    for path, info in variables.items():
        assert info["devices"] == 4, (path, info)
        want = expected_spec(name, path)
        if want is None:
            assert all(axis is None for axis in info["spec"]), (path, info)
        else:
            assert info["spec"] == want, (path, info)


@pytest.mark.parametrize("name", DISTRIBUTIONS)
@pytest.mark.slow
def test_jax_fit_matches_single_device(jax_run, name):
    """`model.fit` with a KANRegularizer (L1 on edge scores) and three GridUpdates."""
    _, results = jax_run
    r = results[name]
    assert results["devices"] == 4
    assert r["grid_updates"] == results["fit_grid_updates"] == 3
    assert r["fit_weights_rel_err"] < 1e-5
    # The new grids and coefficients written by GridUpdate kept their layouts.
    check_specs(name, r["variables_after_fit"])


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_jax_fit_lbfgs_objective_is_sharded(jax_run, name):
    """The objective fit_lbfgs minimizes, evaluated with the batch split over the devices."""
    _, results = jax_run
    r = results[name]
    assert results["single_objective_x_sharding"] is None  # NumPy in, no distribution
    assert r["objective_x_sharding"] == ["batch", None] and r["objective_x_devices"] == 4
    split = name == "model_parallel"
    assert r["objective_weight_shardings"][:3] == (
        [SHARDED["spline_kernel"], SHARDED["base_kernel"], SHARDED["spline_scale"]] if split
        else [[None, None, None], [None, None], [None, None]])
    assert r["objective_rel_err"] < 1e-6
    assert r["gradient_rel_err"] < 1e-6


def test_jax_fit_lbfgs_runs_model_parallel(jax_run):
    _, results = jax_run
    r = results["model_parallel"]
    assert r["fit_lbfgs_x_sharding"] == ["batch", None]
    assert r["fit_lbfgs_y_sharding"] == ["batch", None]
    assert r["fit_lbfgs_weight_shardings"][0] == SHARDED["spline_kernel"]
    check_specs("model_parallel", r["variables_after_fit_lbfgs"])
    assert "255 samples" in r["uneven_batch_error"] and "multiple of 2" in r["uneven_batch_error"]


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_jax_refine_under_distribution(jax_run, name):
    _, results = jax_run
    r = results[name]
    assert r["refine_weights_rel_err"] < 1e-5
    check_specs(name, r["variables_after_refine"])


def test_jax_prune_under_data_parallel(jax_run):
    _, results = jax_run
    r = results["data_parallel"]
    assert r["prune_widths"][-1] == 1
    check_specs("data_parallel", r["variables_after_prune"])


@pytest.mark.slow
def test_jax_save_distributed_load_single_device_and_on_torch(jax_run, other_backends):
    out, results = jax_run
    r = results["model_parallel"]
    assert r["loaded_devices"] == 1
    assert r["load_single_device_abs_err"] < 1e-6
    crossload(other_backends, "torch", out, "model_parallel.keras")


# --- TensorFlow: MirroredStrategy on 2 logical CPUs ----------------------------------


@pytest.fixture(scope="module")
def tf_run(tmp_path_factory):
    if BACKEND != "tensorflow":
        pytest.skip("tf.distribute runs on the TensorFlow backend (run once, under TensorFlow)")
    out = tmp_path_factory.mktemp("distributed_tf")
    return out, run_worker("distributed_tf.py", "tensorflow", out)


@pytest.mark.slow
def test_tf_mirrored_fit_matches_single_device(tf_run):
    _, r = tf_run
    assert r["replicas"] == 2
    assert r["variable_types"] == ["MirroredVariable"]
    assert r["grid_updates"] == r["reference_grid_updates"] == 3 and r["grids_moved"]
    assert r["fit_weights_rel_err"] < 1e-5


def test_tf_mirrored_fit_lbfgs_is_a_clear_error(tf_run):
    """fit_lbfgs is not supported under tf.distribute: it says so and changes nothing."""
    _, r = tf_run
    assert "fit_lbfgs does not run under a tf.distribute strategy" in r["fit_lbfgs_error"]
    assert r["fit_lbfgs_left_weights"]


def test_tf_mirrored_edge_score_penalty_is_per_replica(tf_run):
    """Each replica scores edges on its half of the batch: close, not equal (see README)."""
    _, r = tf_run
    assert 1e-6 < r["fit_l1_weights_rel_err"] < 1e-2


@pytest.mark.slow
def test_tf_mirrored_save_reload_and_on_jax(tf_run, other_backends):
    out, r = tf_run
    assert r["reload_in_scope_abs_err"] < 1e-6
    assert r["reload_single_device_abs_err"] < 1e-6
    crossload(other_backends, "jax", out, "mirrored.keras")
