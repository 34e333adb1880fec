"""`fit_lbfgs` drives Keras's TensorBoard callback: event files with the loss per L-BFGS step."""

import glob
import os

import keras
import numpy as np
import pytest

from keras_kan import KAN, fit_lbfgs


def readers():
    """TensorBoard's event reader modules, or a skip.

    Keras's TensorBoard callback writes with `tf.summary` on every backend; the
    files are read back with TensorBoard's own reader. Imported when the test
    runs, not at collection: TensorFlow costs 6 s of a JAX or PyTorch quick run.
    """
    pytest.importorskip("tensorflow", reason="keras.callbacks.TensorBoard writes with tf.summary")
    return (pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                reason="tensorboard (the `tuner` extra) reads the files back"),
            pytest.importorskip("tensorboard.util.tensor_util"))


def scalars(run_dir, tag):
    """`{step: value}` of a scalar written by tf.summary in `run_dir`."""
    event_accumulator, tensor_util = readers()
    assert glob.glob(os.path.join(run_dir, "events.out.tfevents.*")), os.listdir(run_dir)
    acc = event_accumulator.EventAccumulator(
        run_dir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    assert tag in acc.Tags()["tensors"], acc.Tags()
    return {e.step: float(tensor_util.make_ndarray(e.tensor_proto))
            for e in acc.Tensors(tag)}


@pytest.mark.slow
def test_tensorboard_callback_writes_the_loss_of_every_step(tmp_path):
    readers()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 2)).astype("float32")
    y = (x[:, :1] * x[:, 1:]).astype("float32")
    x_val = rng.uniform(-1, 1, (16, 2)).astype("float32")
    y_val = (x_val[:, :1] * x_val[:, 1:]).astype("float32")
    model = KAN([2, 3, 1], grid_size=3, seed=0)
    model.compile("adam", "mse")
    log_dir = str(tmp_path / "logs")
    history = fit_lbfgs(model, x, y, steps=4, max_iter=5, validation_data=(x_val, y_val),
                        callbacks=[keras.callbacks.TensorBoard(log_dir)], verbose=0)
    train = scalars(os.path.join(log_dir, "train"), "epoch_loss")
    assert sorted(train) == [0, 1, 2, 3]
    np.testing.assert_allclose([train[s] for s in range(4)], history.history["loss"],
                               rtol=1e-6)
    assert train[3] < train[0]
    val = scalars(os.path.join(log_dir, "validation"), "epoch_loss")
    np.testing.assert_allclose([val[s] for s in range(4)], history.history["val_loss"],
                               rtol=1e-6)
