"""PyTorch's writer for `keras_kan.export`: ONNX through `torch.onnx`."""

import warnings

import numpy as np

__all__ = ["write_onnx"]


def write_onnx(model, n_in, path):
    """ONNX through Keras's exporter (`torch.onnx`); the caller renames the IO afterwards."""
    model(np.zeros((1, n_in), "float32"))  # Keras exports torch models that have run
    with warnings.catch_warnings():
        # The tracer notes that knot counts become constants: they are static.
        warnings.simplefilter("ignore")
        model.export(path, format="onnx", verbose=False)
