"""TensorFlow's writers for `keras_kan.export`: SavedModel, LiteRT bytes, ONNX (tf2onnx)."""

import keras
import tensorflow as tf

from keras_kan.backend.tensorflow import plain_graphs

__all__ = ["write_saved_model", "litert_bytes", "write_onnx"]


def serving_function(model, n_in, input_name, output_name):
    """A `tf.function` `(batch, n_in) float32 -> {output_name: float32}` for serving."""

    @tf.function(input_signature=[tf.TensorSpec((None, n_in), tf.float32, name=input_name)])
    def serve(inputs):
        return {output_name: tf.cast(model(inputs, training=False), tf.float32)}

    return serve


def write_saved_model(model, n_in, path, signature, input_name, output_name):
    """SavedModel with one `signature` endpoint: `input_name` -> `output_name`."""
    # Plain ops only: no XLA hints (see `plain_graphs`), so that TF Serving, the
    # LiteRT converter and any TensorFlow runtime read the graph as they find it.
    with plain_graphs():
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(signature, serving_function(model, n_in, input_name, output_name))
        archive.write_out(path, verbose=False)


def litert_bytes(saved_model, signature, variant, calibration):
    """`.tflite` bytes from the SavedModel, TFLite builtin ops only (a Flex op fails).

    Args:
        saved_model: path written by `write_saved_model`.
        signature: its endpoint name.
        variant: None (float), `"dynamic"` (dynamic-range weights) or `"int8"`
            (full integer, calibrated on `calibration`).
        calibration: `(N, n_in)` float32 rows for `"int8"`.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[signature])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

        def representative():
            for row in calibration:
                yield [row[None, :]]

        converter.representative_dataset = representative
    try:
        return converter.convert()
    except Exception as error:  # noqa: BLE001 - converter errors have no common public type
        raise RuntimeError(
            f"keras_kan.export: LiteRT conversion ({variant or 'float'}) with TFLite "
            f"builtin ops only failed: {error}"
        ) from error


def write_onnx(model, n_in, path):
    """ONNX through Keras's exporter (tf2onnx); the caller renames the IO afterwards."""
    with plain_graphs():
        model.export(path, format="onnx", verbose=False)
