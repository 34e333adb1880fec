"""Deployment: TF Serving SavedModel, LiteRT (float, dynamic-range, int8) and ONNX.

Every artifact is run by its real runtime (`tf.saved_model.load`, the LiteRT
`Interpreter`, an onnxruntime `InferenceSession`) and compared with the Keras
model. SavedModel and LiteRT are written by TensorFlow, ONNX by TensorFlow or
PyTorch; on JAX (and for the TensorFlow-only formats on PyTorch) the models
go through the command line in a TensorFlow subprocess.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_numpy

from keras_kan import KAN, KANDense, prune, refine, update_grids
from keras_kan.export import FORMATS, export_model, main

ON_TF = BACKEND == "tensorflow"
tf_only = pytest.mark.skipif(not ON_TF, reason="SavedModel and LiteRT are written by TensorFlow")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPORT_CMD = "KERAS_BACKEND=tensorflow python -m keras_kan.export"

BUILTIN_ONLY = {"ABS", "ADD", "CONCATENATION", "EXPAND_DIMS", "FULLY_CONNECTED", "LOGISTIC",
                "MUL", "RESHAPE", "SUB", "RELU", "GREATER_EQUAL", "LESS", "CAST", "SELECT",
                "SELECT_V2", "DIV", "LOGICAL_AND", "SUM", "GATHER", "STRIDED_SLICE", "MAXIMUM",
                "MINIMUM", "PACK", "SHAPE", "BROADCAST_TO", "SQUARE", "WHERE", "IF", "LESS_EQUAL",
                "GREATER", "REDUCE_MAX", "SLICE", "TRANSPOSE", "BATCH_MATMUL", "NEG", "POW",
                "EQUAL", "FLOOR"}
QUANTIZE_OPS = {"QUANTIZE", "DEQUANTIZE"}


def run_tflite(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]), ops


@tf_only
@pytest.mark.slow
def test_litert_export_uses_builtin_ops_and_matches(tmp_path):
    """Keras's own `model.export` (export_model's kinds cover uniform knots too)."""
    model = KAN([3, 4, 2], seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype("float32")
    update_grids(model, x**3)
    path = str(tmp_path / "kan.tflite")
    model.export(path, format="litert", verbose=False)
    got, ops = run_tflite(path, x)
    assert not any(op.startswith("FLEX") or op == "CUSTOM" for op in ops), ops
    assert ops <= BUILTIN_ONLY, ops - BUILTIN_ONLY
    np.testing.assert_allclose(got, to_numpy(model(x)), atol=1e-6)
    got_batch_of_5, _ = run_tflite(path, x[:5])  # dynamic batch
    np.testing.assert_allclose(got_batch_of_5, to_numpy(model(x[:5])), atol=1e-6)


@tf_only
@pytest.mark.slow
def test_saved_model_serving_signature(tmp_path):
    import tensorflow as tf

    model = KAN([2, 3, 1], seed=0)
    path = str(tmp_path / "served")
    model.export(path, format="tf_saved_model", verbose=False)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    for batch in (1, 7):
        x = np.random.default_rng(batch).uniform(-1, 1, (batch, 2)).astype("float32")
        (out,) = serve(tf.constant(x)).values()
        np.testing.assert_allclose(out.numpy(), to_numpy(model(x)), atol=1e-6)


# --- export_model on every kind of model --------------------------------------------------

N_IN = 3


def _data(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, N_IN)).astype("float32")


def _orders():
    """One model with a layer of every spline order 0..5 side by side (and biases)."""
    inputs = keras.Input((N_IN,))
    branches = [KANDense(2, spline_order=k, grid_size=4, use_bias=True, name=f"order_{k}")(inputs)
                for k in range(6)]
    return keras.Model(inputs, keras.layers.Concatenate()(branches), name="orders")


def _refined_pruned(x, skewed):
    """A [3, 5, 2] KAN on data-adapted knots, refined to grid 9, whose hidden node 4 is
    dead, pruned to [3, 4, 2]: grid update, grid extension and pruning in one model."""
    model = KAN([N_IN, 5, 2], seed=0)
    update_grids(model, skewed)
    model = refine(model, 9, skewed)
    into, out_of = np.ones((N_IN, 5), "float32"), np.ones((5, 2), "float32")
    into[:, 4] = 0
    out_of[4, :] = 0
    model.layers[0].edge_mask.assign(into)
    model.layers[1].edge_mask.assign(out_of)
    pruned = prune(model, x, verbose=False)
    assert pruned.layers[0].units == 4 and not pruned.layers[0].uniform_grid
    assert pruned.layers[0].grid_size == 9
    return pruned


def _make_kinds():
    """kind -> (model, float32 reference model, calibration data).

    Four models cover what changes the exported graph: uniform and data-adapted knots
    (every spline order 0..5, with biases), a refined and pruned model, mixed precision.
    """
    x = _data(256, 0)
    skewed = np.sign(x) * np.abs(x) ** 3  # data whose quantiles make non-uniform knots
    kinds = {}
    kinds["orders_bias"] = _orders()
    orders_updated = _orders()
    update_grids(orders_updated, skewed)
    assert not any(layer.uniform_grid for layer in orders_updated.layers
                   if isinstance(layer, KANDense))
    kinds["orders_bias_updated"] = orders_updated
    kinds["refined_pruned"] = _refined_pruned(x, skewed)
    mult = KAN([N_IN, [1, 2], 2], mult_arity=[[], [2, 3], []], seed=0)  # MultNodes
    update_grids(mult, skewed)
    kinds["mult_nodes"] = mult
    out = {kind: (model, model, x) for kind, model in kinds.items()}

    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = KAN([N_IN, 4, 2], seed=0)
        update_grids(mixed, skewed)
    finally:
        keras.config.set_dtype_policy("float32")
    twin = KAN([N_IN, 4, 2], seed=1)  # independent float32 copy of the same weights
    twin.set_weights(mixed.get_weights())
    out["mixed_float16"] = (mixed, twin, x)
    for model, _, _ in out.values():
        assert np.ptp(to_numpy(model(x))) > 0.05  # no degenerate (constant) model
    return out


KINDS = ["orders_bias", "orders_bias_updated", "refined_pruned", "mult_nodes", "mixed_float16"]
# Quantization is tested where it is hardest, on every spline order (uniform and
# data-adapted knots); pruning and float16 change the graph, not what a quantizer sees.
QUANTIZED = ["orders_bias", "orders_bias_updated"]
ARTIFACTS = ["saved_model", "litert", "litert_dynamic", "onnx"]
CASES = [(kind, artifact) for kind in KINDS for artifact in ARTIFACTS
         if artifact != "litert_dynamic" or kind in QUANTIZED]


@pytest.fixture(scope="module")
def kinds():
    keras.utils.set_random_seed(0)
    return _make_kinds()


@pytest.fixture(scope="module")
def exported(request, tmp_path_factory):
    """kind -> paths written by `export_model` (every format this backend can write)."""
    if BACKEND == "jax":
        pytest.skip("JAX writes no format itself (test_cli_exports_a_model_saved_on_this_"
                    "backend covers it through TensorFlow)")
    kinds = request.getfixturevalue("kinds")  # built only where something is exported
    formats = FORMATS if ON_TF else ("onnx",)
    out = {}
    for kind, (model, _, x) in kinds.items():
        target = str(tmp_path_factory.mktemp(kind))
        quantize = ("dynamic", "int8") if ON_TF and kind in QUANTIZED else None
        out[kind] = export_model(model, target, formats=formats, quantize=quantize,
                                 calibration=x if ON_TF else None, name="kan")
    return out


def run_artifact(artifact, path, x):
    """The runtime's outputs for ``x``, resized to ``x``'s batch."""
    if artifact == "saved_model":
        import tensorflow as tf

        serve = tf.saved_model.load(path).signatures["serving_default"]
        out = serve(inputs=tf.constant(x))
        assert set(out) == {"outputs"}
        return out["outputs"].numpy()
    if artifact.startswith("litert"):
        return run_tflite(path, x)[0]
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["inputs"]
    assert [o.name for o in session.get_outputs()] == ["outputs"]
    return session.run(["outputs"], {"inputs": x})[0]


def _close(got, want, rtol=1e-5):
    """Equal to ``rtol`` relative to the output scale (elementwise relative fails at 0)."""
    assert got.dtype == np.float32 and got.shape == want.shape
    scale = max(float(np.max(np.abs(want))), 1e-3)
    error = float(np.max(np.abs(got - want)))
    assert error <= rtol * scale, f"max |error| {error:.2e} > {rtol:.0e} * {scale:.3g}"
    return error


@pytest.mark.parametrize("kind, artifact", CASES)
@pytest.mark.slow
def test_runtime_matches_keras(exported, kinds, kind, artifact, record_property):
    if artifact not in exported[kind]:
        pytest.skip(f"{artifact} is written by TensorFlow")
    _, reference, _ = kinds[kind]
    errors = []
    for batch, seed in ((1, 11), (37, 12)):  # batch 1, then the same runtime resized
        x = _data(batch, seed) * 1.2  # also a little outside the grid
        want = to_numpy(reference(x)).astype(np.float32)
        errors.append(_close(run_artifact(artifact, exported[kind][artifact], x), want))
    record_property("max_abs_error", max(errors))
    print(f"\n{kind:<15} {artifact:<15} max |error| {max(errors):.1e}")


@tf_only
@pytest.mark.parametrize("kind", QUANTIZED)
def test_litert_variants_builtin_only_and_int8_bounded(exported, kinds, kind, record_property):
    _, reference, _ = kinds[kind]
    x = _data(200, 21)
    want = to_numpy(reference(x)).astype(np.float32)
    for variant in ("litert", "litert_dynamic", "litert_int8"):
        got, ops = run_tflite(exported[kind][variant], x)
        assert not any(op.startswith("FLEX") or op == "CUSTOM" for op in ops), ops
        assert ops <= BUILTIN_ONLY | QUANTIZE_OPS, ops - BUILTIN_ONLY - QUANTIZE_OPS
    from ai_edge_litert.interpreter import Interpreter

    tensors = Interpreter(model_path=exported[kind]["litert_int8"]).get_tensor_details()
    assert any(t["dtype"] == np.int8 for t in tensors), "int8 variant holds no int8 tensor"
    error = float(np.max(np.abs(got - want)))
    spread = float(np.ptp(want))
    record_property("int8_max_abs_error", error)
    print(f"\n{kind:<15} litert_int8     max |error| {error:.1e} (output range {spread:.2f})")
    # Per-tensor int8 steps are 1/255 of each tensor's range and a KAN chains a few;
    # measured worst: 6% (uniform order 5, whose closed form sums alternating terms).
    assert error <= 0.1 * spread


@tf_only
@pytest.mark.slow
def test_flex_op_fails_and_writes_nothing(tmp_path):
    model = keras.Sequential([keras.Input((N_IN,)), KANDense(2),
                              keras.layers.Lambda(lambda t: keras.ops.erfinv(0.1 * t))])
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="builtin ops only"):
        export_model(model, str(out), formats="litert")
    assert not out.exists()


def test_mixed_precision_exports_float32(exported, kinds):
    mixed, _, _ = kinds["mixed_float16"]
    assert mixed.layers[0].compute_dtype == "float16"
    x = _data(64, 5)
    want = to_numpy(mixed(x))
    for artifact, path in exported["mixed_float16"].items():
        if artifact == "litert_int8":
            continue
        got = run_artifact(artifact, path, x)
        assert got.dtype == np.float32
        # float32 compute vs Keras's float16 compute: float16 rounding apart.
        np.testing.assert_allclose(got, want, atol=5e-3 * np.max(np.abs(want)))


@pytest.mark.skipif(BACKEND == "jax", reason="JAX writes no format itself")
def test_mixed_precision_model_exports_onnx_alone(tmp_path):
    """ONNX as the only format: the float32 twin is not called by a SavedModel first."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = KAN([N_IN, 4, 2], seed=0)
    finally:
        keras.config.set_dtype_policy("float32")
    twin = KAN([N_IN, 4, 2], seed=1)
    twin.set_weights(mixed.get_weights())
    written = export_model(mixed, str(tmp_path), formats="onnx", name="kan")
    assert sorted(written) == ["onnx"]
    x = _data(9, 4)
    _close(run_artifact("onnx", written["onnx"], x), to_numpy(twin(x)).astype(np.float32))


@tf_only
@pytest.mark.slow
def test_serving_layout_and_saved_model_cli(exported, kinds, tmp_path):
    path = exported["orders_bias_updated"]["saved_model"]
    assert path.endswith(os.path.join("kan", "1"))
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    # A second version goes next to the first, as TF Serving expects.
    model, _, _ = kinds["orders_bias"]
    root = os.path.dirname(os.path.dirname(path))
    written = export_model(model, root, formats="saved_model", version=2, name="kan")
    assert sorted(os.listdir(os.path.join(root, "kan"))) == ["1", "2"]
    with pytest.raises(FileExistsError):
        export_model(model, root, formats="saved_model", version=2, name="kan")
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli is not installed next to this Python")
    shown = subprocess.run([cli, "show", "--all", "--dir", written["saved_model"]],
                           check=False, capture_output=True, text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "signature_def['serving_default']" in text
    assert "inputs['inputs'] tensor_info:" in text and "outputs['outputs'] tensor_info:" in text
    assert "shape: (-1, 3)" in text and "shape: (-1, 12)" in text  # 6 orders x 2 units
    assert text.count("dtype: DT_FLOAT") >= 2


# --- the command line, and a model saved on every backend ---------------------------------


def _train_and_save(tmp_path):
    x = _data(200, 3)
    y = np.sin(np.pi * x[:, :1]) + x[:, 1:2] * x[:, 2:3]
    model = KAN([N_IN, 3, 1], seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    model.fit(x, y, epochs=3, batch_size=50, verbose=0)
    update_grids(model, x)
    path = str(tmp_path / f"trained_on_{BACKEND}.keras")
    model.save(path)
    np.save(str(tmp_path / "calibration.npy"), x)
    return model, path


def _env(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    env.pop("KERAS_KAN_EXPORT_REEXEC", None)
    return env


def _check_all(model, written_dir, name):
    x = _data(9, 8)
    want = to_numpy(model(x)).astype(np.float32)
    for artifact, path in [("saved_model", os.path.join(written_dir, name, "1")),
                           ("litert", os.path.join(written_dir, f"{name}.tflite")),
                           ("litert_dynamic", os.path.join(written_dir, f"{name}_dynamic.tflite")),
                           ("onnx", os.path.join(written_dir, f"{name}.onnx"))]:
        _close(run_artifact(artifact, path, x), want)
    int8, _ = run_tflite(os.path.join(written_dir, f"{name}_int8.tflite"), x)
    assert np.max(np.abs(int8 - want)) <= 0.05 * max(np.ptp(want), 1e-3)


@pytest.mark.skipif(BACKEND != "jax", reason="TensorFlow exports in process "
                    "(test_cli_in_process); PyTorch takes the same re-run as JAX, and its "
                    "files load on TensorFlow (test_saving)")
@pytest.mark.slow
def test_cli_exports_a_model_saved_on_this_backend(tmp_path):
    """Run from JAX, which writes no format itself, the command re-runs itself under
    TensorFlow and writes every format (with both quantized LiteRT variants) of the
    file saved here."""
    model, path = _train_and_save(tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "keras_kan.export", path, str(out),
               "--quantize", "dynamic", "--quantize", "int8",
               "--calibration", str(tmp_path / "calibration.npy")]
    done = subprocess.run(command, env=_env(BACKEND), cwd=str(tmp_path),
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "re-running with KERAS_BACKEND=tensorflow" in done.stderr
    name = f"trained_on_{BACKEND}"
    _check_all(model, str(out), name)


@tf_only
@pytest.mark.slow
def test_cli_in_process(tmp_path, capsys):
    """`main` parses the command line and exports; the formats themselves are checked on
    every kind of model above, so one float and one int8 LiteRT file suffice here."""
    model, path = _train_and_save(tmp_path)
    out = tmp_path / "out"
    status = main([path, str(out), "--name", "m", "--format", "litert", "--quantize",
                   "int8", "--calibration", str(tmp_path / "calibration.npy")])
    assert status == 0
    printed = capsys.readouterr().out
    assert "litert_int8" in printed and "onnx" not in printed
    assert sorted(os.listdir(out)) == ["m.tflite", "m_int8.tflite"]
    x = _data(9, 8)
    want = to_numpy(model(x)).astype(np.float32)
    _close(run_tflite(str(out / "m.tflite"), x)[0], want)
    int8, _ = run_tflite(str(out / "m_int8.tflite"), x)
    assert np.max(np.abs(int8 - want)) <= 0.05 * max(np.ptp(want), 1e-3)


def test_backend_without_a_writer_names_the_command(tmp_path):
    if ON_TF:
        pytest.skip("TensorFlow writes every format")
    model = KAN([N_IN, 2], seed=0)
    out = tmp_path / "out"
    formats = FORMATS if BACKEND == "jax" else ("saved_model", "litert")
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=tensorflow python -m keras_kan"):
        export_model(model, str(out), formats=formats)
    path = str(tmp_path / "m.keras")
    model.save(path)
    with pytest.raises(RuntimeError) as info:
        export_model(path, str(out), formats="litert")
    assert f"{EXPORT_CMD} {path} {out} --format litert" in str(info.value)
    assert not out.exists()


# --- bad input: clear errors, nothing written ---------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    path = str(folder / "m.keras")
    KAN([N_IN, 2], seed=0).save(path)
    np.save(str(folder / "cal.npy"), _data(20, 0))
    return folder, path


@pytest.mark.parametrize("case, match", [
    ("not_keras", "expected a `.keras` file"),
    ("fake_keras", "not a `.keras` archive"),
    ("missing", "no such file"),
    ("format", "argument `formats`"),
    ("quantize", "argument `quantize`"),
    ("int8_no_calibration", "no `calibration`"),
    ("calibration_shape", "expected a non-empty numeric array"),
    ("version", "argument `version`"),
])
def test_bad_input_is_rejected_before_writing(saved, tmp_path, case, match):
    _, path = saved
    out = tmp_path / "out"
    kwargs = {}
    if case == "not_keras":
        path = str(tmp_path / "m.h5")
        (tmp_path / "m.h5").write_bytes(b"x")
    elif case == "fake_keras":
        path = str(tmp_path / "fake.keras")
        (tmp_path / "fake.keras").write_text("not a zip")
    elif case == "missing":
        path = str(tmp_path / "missing.keras")
    elif case == "format":
        kwargs = {"formats": ("onnx", "tflite")}
    elif case == "quantize":
        kwargs = {"quantize": "float16"}
    elif case == "int8_no_calibration":
        kwargs = {"quantize": "int8"}
    elif case == "calibration_shape":
        kwargs = {"quantize": "int8", "calibration": np.zeros((5,), "float32")}
    elif case == "version":
        kwargs = {"version": 0}
    with pytest.raises(ValueError, match=match):
        export_model(path, str(out), **kwargs)
    assert not out.exists()


def test_wrong_calibration_width_is_rejected(saved, tmp_path):
    if not ON_TF:
        pytest.skip("checked after the model loads, on a backend that writes LiteRT")
    _, path = saved
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"expected \(N, 3\)"):
        export_model(path, str(out), formats="litert", quantize="int8",
                     calibration=np.zeros((4, 2), "float32"))
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["{tmp}/m.txt", "{out}"], "expected a `.keras` file"),
    (["{path}", "{out}", "--format", "tflite"], "one or more of saved_model, litert, onnx"),
    (["{path}", "{out}", "--quantize", "int8"], "--quantize int8 needs --calibration"),
    (["{path}", "{out}", "--quantize", "int4", "--calibration", "{cal}"], "argument `quantize`"),
    (["{path}", "{out}", "--version", "two"], "`--version`"),
])
def test_cli_bad_input(saved, tmp_path, capsys, args, message):
    folder, path = saved
    out = tmp_path / "out"
    (tmp_path / "m.txt").write_text("x")
    fill = {"tmp": str(tmp_path), "out": str(out), "path": path, "cal": str(folder / "cal.npy")}
    assert main([a.format(**fill) for a in args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_package_says_what_to_install(saved, tmp_path, monkeypatch):
    if BACKEND == "jax":
        pytest.skip("JAX writes no format, so the backend error comes first")
    _, path = saved
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` sees when absent
    out = tmp_path / "out"
    with pytest.raises(ImportError, match=r"pip install keras-kan\[export\]"):
        export_model(path, str(out), formats="onnx")
    assert not out.exists()


@pytest.mark.slow
def test_import_keras_kan_loads_no_export_dependency():
    code = ("import sys, keras_kan, keras_kan.export; "
            "print(sorted(m for m in ('tensorflow', 'onnx', 'tf2onnx', 'onnxruntime', "
            "'ai_edge_litert') if m in sys.modules))")
    backend = "jax" if ON_TF else BACKEND  # Keras itself imports TensorFlow on TF
    done = subprocess.run([sys.executable, "-c", code], env=_env(backend),
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
