"""The training objective `fit_lbfgs` minimizes, compiled per backend and cached per model.

* `value_and_grad_fn(model)`: the objective of a compiled model and its
  gradient with respect to `model.trainable_variables`.
* `evaluate_fn(model)`: the loss `model.evaluate` reports and the predictions.

The objective is what `model.fit` minimizes: the model is called with
`training=True` and the loss is `model.compute_loss(...)`, i.e. the compiled
loss plus `model.losses` (penalties added with `layer.add_loss`, weight
regularizers). `model.run_eagerly = True` disables compilation on every backend.

Compiled functions are cached per model, as `Model.fit` caches its train
function: the cache is dropped when the model is compiled again (a new
optimizer object), when its variables or `run_eagerly` / `jit_compile` change,
when a KANDense switches basis (`uniform_grid`, a choice baked into traced
code), or by `reset_compiled_functions`.
"""

import importlib
import weakref

import keras

__all__ = ["value_and_grad_fn", "objective_value_and_grad_fn", "evaluate_fn",
           "lbfgs_program_fn", "reset_compiled_functions"]

_CACHE = weakref.WeakKeyDictionary()  # model -> {kind: (signature, function)}


def _impl():
    return importlib.import_module(f"keras_kan.backend.{keras.backend.backend()}")


def _layer_tree(layer):
    for child in getattr(layer, "layers", ()):
        yield child
        yield from _layer_tree(child)


def _signature(model):
    return (
        getattr(model, "optimizer", None),
        tuple(model.trainable_variables),
        tuple(model.non_trainable_variables),
        bool(model.run_eagerly),
        bool(getattr(model, "jit_compile", False)),
        # KANDense picks its basis when traced (bool or None, compared with `is`).
        tuple(getattr(layer, "uniform_grid", None) for layer in _layer_tree(model)),
    )


def _same(a, b):
    return len(a) == len(b) and all(
        (p is q) if not isinstance(p, tuple) else _same(p, q) for p, q in zip(a, b)
    )


def _cached(model, kind, make):
    if not model.built:
        raise ValueError(f"keras_kan.backend.{kind}: the model must be built first.")
    signature = _signature(model)
    entries = _CACHE.setdefault(model, {})
    hit = entries.get(kind)
    if hit is not None and _same(hit[0], signature):
        return hit[1]
    # The compiled function holds the model weakly, so the cache never keeps
    # a model alive.
    fn = make(weakref.ref(model))
    entries[kind] = (signature, fn)
    return fn


def value_and_grad_fn(model):
    """Returns `f(x, y, sample_weight=None) -> (loss, grad)` for a built, compiled model.

    `loss` is a Python float: the training objective (compiled loss plus
    `model.losses`) at the current values of the model's variables, with the
    model called in training mode. `grad` is a 1-D float64 NumPy array: the
    gradients with respect to `model.trainable_variables`, each flattened
    (C order) and concatenated in that order. A variable the loss does not
    depend on gets zeros. `x`, `y` and `sample_weight` are passed to the model
    and its loss as they are (backend tensors; nested structures allowed).

    `f.at(weights, x, y, sample_weight=None)` evaluates at other values of the
    trainable variables: `weights` is a list of NumPy arrays, one per trainable
    variable, in its dtype. On TensorFlow and PyTorch the variables are
    assigned these values; on JAX they are passed to the compiled function and
    the variables keep their values (assign the point you settle on). On every
    backend, non-trainable variables updated by the forward pass are written
    back to the model.
    """
    return _cached(model, "value_and_grad_fn", _impl().make_value_and_grad)


def objective_value_and_grad_fn(model, objective):
    """As `value_and_grad_fn`, for the scalar `objective(model)` instead of the compiled loss.

    `objective` is called with the model (inside the compiled function, with
    the variables at the values being evaluated) and must return a scalar
    tensor; the data arguments of `f` and `f.at` are ignored (pass None). The
    model need not be compiled. Cached per model for the last objective (on
    the model itself, so the objective's closure never keeps a model alive).
    """
    from keras_kan.backend.common import objective_loss

    if not model.built:
        raise ValueError("keras_kan.backend.objective_value_and_grad_fn: the model must be "
                         "built first.")
    signature = _signature(model)
    hit = getattr(model, "_keras_kan_objective_fn", None)
    if hit is not None and hit[1] is objective and _same(hit[0], signature):
        return hit[2]
    fn = _impl().make_value_and_grad(weakref.ref(model), objective_loss(objective))
    # Not a tracked Keras attribute (Keras would walk the tuple for variables).
    object.__setattr__(model, "_keras_kan_objective_fn", (signature, objective, fn))
    return fn


def lbfgs_program_fn(model, key, run, objective=None):
    """Whole L-BFGS steps in one compiled call: `backend.make_lbfgs_program` of `run`.

    `run(evaluate, flat, state, aux, n_steps)` is the algorithm in keras.ops
    (`keras_kan.lbfgs_compiled.run_steps` with its settings bound), `key` a
    hashable name for those settings. Returns `program(flat, state, n_steps, x, y,
    sample_weight=None) -> (flat, state, *outputs)` for the compiled loss (or
    `objective(model)`); `program.dtype` is the flat vector's dtype (the
    variables'). Cached on the model per key, for the last objective, and rebuilt
    on the same changes as `value_and_grad_fn`.
    """
    from keras_kan.backend.common import forward_loss, objective_loss

    if not model.built:
        raise ValueError("keras_kan.backend.lbfgs_program_fn: the model must be built first.")
    signature = _signature(model)
    programs = getattr(model, "_keras_kan_lbfgs_programs", None) or {}
    hit = programs.get(key)
    if hit is not None and hit[1] is objective and _same(hit[0], signature):
        return hit[2]
    loss_fn = forward_loss if objective is None else objective_loss(objective)
    fn = _impl().make_lbfgs_program(weakref.ref(model), loss_fn, run)
    programs = {k: v for k, v in programs.items() if _same(v[0], signature)}
    programs[key] = (signature, objective, fn)
    object.__setattr__(model, "_keras_kan_lbfgs_programs", programs)
    return fn


def evaluate_fn(model):
    """Returns `f(x, y, sample_weight=None) -> (loss, y_pred)` for a built, compiled model.

    The loss `model.evaluate` reports on one batch (model called with
    `training=False`, `model.compute_loss(..., training=False)`) as a Python
    float, and the predictions as backend tensors (to update compiled metrics
    with `model.compute_metrics`). Loss trackers updated by the compiled loss
    are written back on JAX, as `evaluate` does.
    """
    return _cached(model, "evaluate_fn", _impl().make_evaluate)


def reset_compiled_functions(model):
    """Make `model` retrace its compiled train/test/predict functions.

    Needed after a change that a traced function baked in as a constant (a
    KANDense switching between its uniform-grid and general basis, a layer
    losing its regularizer). Safe inside `fit`: the trainers look
    `train_function` up before each step, so the rebuilt function is used
    from the next step on.
    """
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
    for attr in ("test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    _CACHE.pop(model, None)
    if getattr(model, "_keras_kan_objective_fn", None) is not None:
        object.__setattr__(model, "_keras_kan_objective_fn", None)
    if getattr(model, "_keras_kan_lbfgs_programs", None) is not None:
        object.__setattr__(model, "_keras_kan_lbfgs_programs", None)
