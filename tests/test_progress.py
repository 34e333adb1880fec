"""fit_lbfgs's progress display (keras_kan.progress): one bar over the steps at verbose=1
and "auto", Keras's per-epoch lines at verbose=2, nothing at 0; History and callbacks
the same whatever is shown.

The reference for the numbers on the bar is the run's own History (what Keras's
Progbar formats is compared with the float it was given, to the 4 digits shown).
"""

import re

import keras
import numpy as np
import pytest

from keras_kan import KAN, fit_lbfgs

STEPS = 3
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (32, 2)).astype("float32")
    return x, (np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2).astype("float32")


class Count(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.epochs, self.params_seen = [], dict(self.params)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch, sorted(logs)))


def _fit(capsys, verbose, steps=STEPS, callbacks=()):
    x, y = _data()
    model = KAN([2, 2, 1], grid_size=3, seed=0)
    model.compile(loss="mse", metrics=["mae"])
    count = Count()
    capsys.readouterr()
    history = fit_lbfgs(model, x, y, steps=steps, max_iter=2, validation_data=(x, y),
                        callbacks=[count, *callbacks], verbose=verbose)
    return ANSI.sub("", capsys.readouterr().out), history, count


def _last_screen_line(out):
    """What a terminal shows last: the text after the final carriage return."""
    lines = [line for line in out.split("\n") if line.strip()]
    return lines[-1].split("\r")[-1].replace("\b", "")


@pytest.mark.parametrize("verbose", [1, "auto"])
def test_one_bar_over_the_steps_with_the_last_logs(capsys, verbose):
    out, history, count = _fit(capsys, verbose)
    assert "Epoch" not in out, out
    assert len([line for line in out.split("\n") if line.strip()]) == 1, repr(out)
    shown = _last_screen_line(out)
    assert shown.lstrip().startswith(f"{STEPS}/{STEPS}"), shown
    values = dict(re.findall(r"- (\w+): ([-+0-9.e]+)", shown))
    assert set(values) == {"loss", "mae", "val_loss", "val_mae"}, shown
    for name, text in values.items():  # the last step's values, not averages
        assert float(text) == pytest.approx(history.history[name][-1], rel=1e-3, abs=1e-7)
    # History and callbacks are what they were with Keras's ProgbarLogger.
    assert {k: len(v) for k, v in history.history.items()} == {
        "loss": STEPS, "mae": STEPS, "val_loss": STEPS, "val_mae": STEPS}
    assert [e for e, _ in count.epochs] == list(range(STEPS))
    assert count.params_seen == {"verbose": 1, "epochs": STEPS, "steps": 1}


def test_verbose_2_keeps_a_line_per_step_and_0_is_silent(capsys):
    out, history, count = _fit(capsys, 2)
    assert [int(k) for k in re.findall(r"Epoch (\d+)/3", out)] == [1, 2, 3], out
    assert out.count("val_loss:") == STEPS
    assert count.params_seen["verbose"] == 2 and len(history.history["loss"]) == STEPS
    out, history, _ = _fit(capsys, 0)
    assert out == "" and len(history.history["loss"]) == STEPS


def test_the_bar_closes_where_training_stopped(capsys):
    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    out, history, _ = _fit(capsys, 1, steps=5, callbacks=[StopAfterTwo()])
    assert _last_screen_line(out).lstrip().startswith("2/5"), repr(out)
    assert out.endswith("\n") and len(history.history["loss"]) == 2


def test_a_given_progbar_logger_is_used_instead(capsys):
    out, _, _ = _fit(capsys, 1, callbacks=[keras.callbacks.ProgbarLogger()])
    assert [int(k) for k in re.findall(r"Epoch (\d+)/3", out)] == [1, 2, 3], out
