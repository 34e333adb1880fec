"""Deployment: LiteRT (TFLite) with builtin ops only, and SavedModel serving signatures."""

import numpy as np
import pytest
from conftest import BACKEND, to_numpy

from keras_kan import KAN, update_grids

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow",
                                reason="model.export to LiteRT/SavedModel runs on TensorFlow")

BUILTIN_ONLY = {"ABS", "ADD", "CONCATENATION", "EXPAND_DIMS", "FULLY_CONNECTED", "LOGISTIC",
                "MUL", "RESHAPE", "SUB", "RELU", "GREATER_EQUAL", "LESS", "CAST", "SELECT",
                "SELECT_V2", "DIV", "LOGICAL_AND", "SUM", "GATHER", "STRIDED_SLICE", "MAXIMUM",
                "MINIMUM", "PACK", "SHAPE", "BROADCAST_TO", "SQUARE", "WHERE", "IF", "LESS_EQUAL",
                "GREATER", "REDUCE_MAX", "SLICE", "TRANSPOSE", "BATCH_MATMUL", "NEG", "POW",
                "EQUAL", "FLOOR"}


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


@pytest.mark.parametrize("uniform", [True, False])
def test_litert_export_uses_builtin_ops_and_matches(tmp_path, uniform):
    model = KAN([3, 4, 2], seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype("float32")
    if not uniform:
        update_grids(model, x**3)
    path = str(tmp_path / "kan.tflite")
    model.export(path, format="litert", verbose=False)
    got, ops = run_tflite(path, x)
    assert not any(op.startswith("FLEX") or op == "CUSTOM" for op in ops), ops
    assert ops <= BUILTIN_ONLY, ops - BUILTIN_ONLY
    np.testing.assert_allclose(got, to_numpy(model(x)), atol=1e-6)
    got_batch_of_5, _ = run_tflite(path, x[:5])  # dynamic batch
    np.testing.assert_allclose(got_batch_of_5, to_numpy(model(x[:5])), atol=1e-6)


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
