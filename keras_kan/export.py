"""Ship a trained model: TF Serving SavedModel, LiteRT (float, dynamic-range, int8), ONNX.

`export_model(model_or_path, out_dir)` writes, for a single-input model
``(batch, n) -> (batch, m)`` (a `KAN`, or any model built from `KANDense`):

| format        | file(s) under ``out_dir``                  | runtime                        |
| ------------- | ------------------------------------------ | ------------------------------ |
| `saved_model` | ``<name>/<version>/`` (TF Serving layout)  | TF Serving, `tf.saved_model`   |
| `litert`      | ``<name>.tflite``, ``<name>_dynamic.tflite``, ``<name>_int8.tflite`` | LiteRT |
| `onnx`        | ``<name>.onnx``                            | onnxruntime                    |

Every artifact has a dynamic batch dimension, float32 input and output (a
mixed-precision model is exported with float32 compute), and the same names:
input ``inputs`` ``(batch, n)``, output ``outputs`` ``(batch, m)`` -- the
``serving_default`` signature of the SavedModel and of the `.tflite` files
(`Interpreter.get_signature_runner("serving_default")`), and the ONNX graph's
input and output.

SavedModel and LiteRT are written by TensorFlow; ONNX by TensorFlow (tf2onnx)
or PyTorch (`torch.onnx`). A `.keras` file loads on every backend, so a model
trained on JAX or PyTorch is exported by the command line under TensorFlow:

    KERAS_BACKEND=tensorflow python -m keras_kan.export MODEL.keras OUT_DIR

(the command line re-runs itself that way when the current backend cannot
write a requested format). TensorFlow, onnx, tf2onnx and onnxruntime are the
`export` extra: ``pip install keras-kan[export]``.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile

import keras
import numpy as np

from keras_kan.surgery import sync_grids

__all__ = ["export_model", "main", "FORMATS", "QUANTIZATIONS", "INPUT_NAME", "OUTPUT_NAME"]

FORMATS = ("saved_model", "litert", "onnx")
QUANTIZATIONS = ("dynamic", "int8")
INPUT_NAME = "inputs"
OUTPUT_NAME = "outputs"
SIGNATURE = "serving_default"
INSTALL_HINT = "pip install keras-kan[export]"
_REEXEC_MARK = "KERAS_KAN_EXPORT_REEXEC"
_CALIBRATION_SAMPLES = 500


def export_model(model_or_path, out_dir, formats=FORMATS, version=1, quantize=None,
                 calibration=None, name=None, overwrite=False):
    """Writes a model as a TF Serving SavedModel, LiteRT and ONNX files.

    Args:
        model_or_path: a built single-input `keras.Model` with input
            ``(batch, n)``, or the path of a `.keras` file (saved on any backend).
        out_dir: folder to write into (created if missing). Nothing is written
            when an argument is invalid or a conversion fails.
        formats: a name or a sequence of names from
            ``("saved_model", "litert", "onnx")``.
        version: positive int, the TF Serving version folder
            (``out_dir/<name>/<version>/``).
        quantize: `None`, ``"dynamic"``, ``"int8"`` or a sequence of them:
            LiteRT variants written next to the float ``<name>.tflite``.
            ``"dynamic"``: dynamic-range quantization (int8 weights of large
            tensors, float activations). ``"int8"``: full-integer
            quantization (`TFLITE_BUILTINS_INT8`) calibrated on
            ``calibration``; input and output stay float32.
        calibration: samples ``(N, n)`` (a NumPy array or the path of a `.npy`
            file) representative of the inputs; required for ``"int8"``. The
            first 500 rows are used.
        name: the model's folder/file name; defaults to the `.keras` file's
            stem, or to ``model.name``.
        overwrite: replace existing artifacts of the same name and version
            instead of raising `FileExistsError`.

    Returns:
        A dict from artifact (``"saved_model"``, ``"litert"``,
        ``"litert_dynamic"``, ``"litert_int8"``, ``"onnx"``) to its path.

    Raises:
        ValueError: an invalid argument (unknown format or quantization, a
            path that is not a `.keras` file, calibration data missing or of
            the wrong shape, a model that is not ``(batch, n) -> (batch, m)``).
        RuntimeError: the current Keras backend cannot write a requested
            format; the message gives the command that does.
        ImportError: a package of the `export` extra is missing.
    """
    formats = _check_formats(formats)
    quantize = _check_quantize(quantize, formats)
    version = _check_version(version)
    path = None
    if isinstance(model_or_path, (str, os.PathLike)):
        path = _check_keras_path(model_or_path)
    elif not isinstance(model_or_path, keras.Model):
        raise ValueError(
            "Received an invalid value for argument `model_or_path`: expected a "
            f"keras.Model or the path of a `.keras` file, got {model_or_path!r}."
        )
    if "int8" in quantize and calibration is None:
        raise ValueError(
            "Received `quantize` with 'int8' but no `calibration` data: full-integer "
            "quantization needs representative inputs (an array or a `.npy` file of "
            "shape (N, n_inputs), e.g. a few hundred training samples)."
        )
    if calibration is not None:
        calibration = _load_calibration(calibration)
    _check_backend(formats, quantize, version, path, out_dir, name)
    _check_packages(formats)
    if name is None:
        name = (os.path.splitext(os.path.basename(path))[0] if path
                else model_or_path.name)
    name = _check_name(name)
    targets = _targets(out_dir, name, version, formats, quantize)
    if not overwrite:
        existing = [p for p in targets.values() if os.path.exists(p)]
        if existing:
            raise FileExistsError(
                f"keras_kan.export: {existing[0]} already exists; pass `overwrite=True` "
                "(`--overwrite`) or another `version`/`name`."
            )

    model = keras.saving.load_model(path) if path else model_or_path
    n_in = _input_width(model)
    if calibration is not None and (calibration.ndim != 2 or calibration.shape[1] != n_in):
        raise ValueError(
            "Received `calibration` of shape "
            f"{calibration.shape}: expected (N, {n_in}) for this model's input."
        )
    model = _float32_model(model, n_in)

    # Build everything in a scratch folder, then move it into place: a failed
    # conversion leaves `out_dir` as it was.
    scratch = tempfile.mkdtemp(prefix="keras_kan_export_")
    try:
        written = {}
        backend = keras.backend.backend()
        if backend == "tensorflow":
            from keras_kan.backend import export_tensorflow
        else:
            from keras_kan.backend import export_torch
        if "saved_model" in formats or "litert" in formats:
            saved = os.path.join(scratch, "saved_model")
            export_tensorflow.write_saved_model(model, n_in, saved, SIGNATURE, INPUT_NAME,
                                                OUTPUT_NAME)
            if "saved_model" in formats:
                written["saved_model"] = saved
            if "litert" in formats:
                for variant in (None,) + quantize:
                    key = "litert" if variant is None else f"litert_{variant}"
                    file = os.path.join(scratch, key + ".tflite")
                    with open(file, "wb") as f:
                        f.write(export_tensorflow.litert_bytes(saved, SIGNATURE, variant,
                                                               calibration))
                    written[key] = file
        if "onnx" in formats:
            file = os.path.join(scratch, "model.onnx")
            if backend == "tensorflow":
                export_tensorflow.write_onnx(model, n_in, file)
            else:
                export_torch.write_onnx(model, n_in, file)
            _name_onnx_io(file)
            written["onnx"] = file
        os.makedirs(out_dir, exist_ok=True)
        for key, source in written.items():
            target = targets[key]
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(source, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {key: targets[key] for key in written}


def _targets(out_dir, name, version, formats, quantize):
    targets = {}
    if "saved_model" in formats:
        targets["saved_model"] = os.path.join(out_dir, name, str(version))
    if "litert" in formats:
        targets["litert"] = os.path.join(out_dir, f"{name}.tflite")
        for variant in quantize:
            targets[f"litert_{variant}"] = os.path.join(out_dir, f"{name}_{variant}.tflite")
    if "onnx" in formats:
        targets["onnx"] = os.path.join(out_dir, f"{name}.onnx")
    return targets


# --- argument checks (no heavy imports, nothing written) ----------------------------------


def _as_tuple(value):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _check_formats(formats):
    formats = _as_tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ValueError(
            f"Received an invalid value for argument `formats`: {formats!r}; expected "
            f"one or more of {', '.join(FORMATS)}."
        )
    return tuple(dict.fromkeys(formats))


def _check_quantize(quantize, formats):
    quantize = _as_tuple(quantize)
    unknown = [q for q in quantize if q not in QUANTIZATIONS]
    if unknown:
        raise ValueError(
            f"Received an invalid value for argument `quantize`: {unknown[0]!r}; expected "
            f"None or one or more of {', '.join(QUANTIZATIONS)}."
        )
    if quantize and "litert" not in formats:
        raise ValueError(
            f"Received `quantize={quantize!r}` without the 'litert' format: quantized "
            "variants are LiteRT files."
        )
    return tuple(dict.fromkeys(quantize))


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(
            "Received an invalid value for argument `version`: expected a positive "
            f"integer (TF Serving's version folder), got {version!r}."
        )
    return int(version)


def _check_name(name):
    if not isinstance(name, str) or not name or name in (".", "..") or any(
        c in name for c in "/\\" + os.sep
    ):
        raise ValueError(
            "Received an invalid value for argument `name`: expected a non-empty file "
            f"name without path separators, got {name!r}."
        )
    return name


def _check_keras_path(path):
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(
            f"Received an invalid model path {path!r}: expected a `.keras` file written "
            "by `model.save('model.keras')`."
        )
    if not os.path.isfile(path):
        raise ValueError(f"Received an invalid model path {path!r}: no such file.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Received an invalid model path {path!r}: not a `.keras` archive (a `.keras` "
            "file is a zip written by `model.save`)."
        )
    return path


def _load_calibration(calibration):
    if isinstance(calibration, (str, os.PathLike)):
        path = os.fspath(calibration)
        if not os.path.isfile(path):
            raise ValueError(f"Received an invalid `calibration` path {path!r}: no such file.")
        try:
            calibration = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:  # a file NumPy cannot read as an array
            raise ValueError(
                f"Received an invalid `calibration` file {path!r}: expected a `.npy` array "
                f"({error})."
            ) from None
    calibration = np.asarray(calibration)
    if calibration.dtype.kind not in "fiu" or calibration.ndim != 2 or len(calibration) == 0:
        raise ValueError(
            "Received invalid `calibration` data: expected a non-empty numeric array "
            f"(N, n_inputs), got dtype {calibration.dtype} and shape {calibration.shape}."
        )
    if not np.all(np.isfinite(calibration)):
        raise ValueError("Received invalid `calibration` data: it contains NaN or inf.")
    return calibration[:_CALIBRATION_SAMPLES].astype(np.float32)


# The backends that can write each format.
_WRITERS = {"saved_model": ("tensorflow",), "litert": ("tensorflow",),
            "onnx": ("tensorflow", "torch")}


def _unsupported(formats, backend=None):
    backend = backend or keras.backend.backend()
    return [f for f in formats if backend not in _WRITERS[f]]


def _command(path, out_dir, formats, quantize, version, name, calibration_arg="DATA.npy"):
    args = ["KERAS_BACKEND=tensorflow", "python", "-m", "keras_kan.export",
            path or "MODEL.keras", os.fspath(out_dir)]
    for f in formats if tuple(formats) != FORMATS else ():
        args += ["--format", f]
    for q in quantize:
        args += ["--quantize", q]
    if "int8" in quantize:
        args += ["--calibration", calibration_arg]
    if version != 1:
        args += ["--version", str(version)]
    if name is not None:
        args += ["--name", name]
    return " ".join(shlex.quote(a) if i else a for i, a in enumerate(args))


def _check_backend(formats, quantize, version, path, out_dir, name):
    backend = keras.backend.backend()
    missing = _unsupported(formats, backend)
    if not missing:
        return
    why = {"saved_model": "SavedModel is written by TensorFlow",
           "litert": "LiteRT files are converted by TensorFlow",
           "onnx": "ONNX on JAX needs jax2onnx; TensorFlow (tf2onnx) and PyTorch "
                   "(torch.onnx) export it"}
    reasons = "; ".join(why[f] for f in missing)
    save = "" if path else "save the model (`model.save('MODEL.keras')`; it loads on every " \
                           "backend) and run "
    raise RuntimeError(
        f"keras_kan.export: the {backend} backend cannot write {', '.join(missing)} "
        f"({reasons}). To export, {save}"
        f"`{_command(path, out_dir, formats, quantize, version, name)}`"
    )


def _check_packages(formats):
    needed = []
    if "saved_model" in formats or "litert" in formats or (
        "onnx" in formats and keras.backend.backend() == "tensorflow"
    ):
        needed.append(("tensorflow", "tensorflow-cpu"))
    if "onnx" in formats:
        needed.append(("onnx", "onnx"))
        if keras.backend.backend() == "tensorflow":
            needed.append(("tf2onnx", "tf2onnx"))
    for module, package in needed:
        try:
            __import__(module)
        except ImportError:
            raise ImportError(
                f"keras_kan.export needs `{package}` for {', '.join(formats)}: "
                f"`{INSTALL_HINT}`."
            ) from None


# --- model preparation ------------------------------------------------------------------


def _input_width(model):
    if not model.built:
        raise ValueError("Received an unbuilt model: call it on data (or build it) first.")
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or len(inputs) != 1 or len(inputs[0].shape) != 2 or inputs[0].shape[1] is None:
        shapes = [tuple(i.shape) for i in inputs] if inputs else inputs
        raise ValueError(
            "keras_kan.export exports models with one input of shape (batch, n); this "
            f"model's inputs are {shapes}."
        )
    return int(inputs[0].shape[1])


def _float32_policies(config):
    """Replaces every dtype policy in a serialized model by float32 (in place)."""
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(
            config.get("config"), dict
        ):
            config["config"]["name"] = "float32"
        for key, value in config.items():
            if key == "dtype" and isinstance(value, str) and value in (
                "mixed_float16", "mixed_bfloat16", "float16", "bfloat16"
            ):
                config[key] = "float32"
            else:
                _float32_policies(value)
    elif isinstance(config, list):
        for value in config:
            _float32_policies(value)
    return config


def _float32_model(model, n_in):
    """The model itself, or a float32-compute twin of a mixed/half-precision model.

    Mixed-precision variables are float32 already; exporting them with float32
    compute gives float32 in/out and kernels every runtime has (LiteRT has no
    general float16 compute), at the float32 model's precision. The twin is
    called once (on `(1, n_in)` zeros): Keras's ONNX exporter refuses a model
    that was never called.
    """
    dtypes = {layer.compute_dtype for layer in _all_layers(model)}
    if dtypes <= {"float32"}:
        return model
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    twin = keras.saving.deserialize_keras_object(config)
    twin.set_weights(model.get_weights())
    sync_grids(twin)  # the weights were written behind the layers' back
    twin(np.zeros((1, n_in), "float32"))
    return twin


def _all_layers(layer):
    for child in getattr(layer, "layers", ()):
        yield child
        yield from _all_layers(child)


def _name_onnx_io(path):
    """Names the ONNX graph's input ``inputs`` and output ``outputs``, batch dim ``batch``."""
    import onnx

    proto = onnx.load(path)
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise RuntimeError(
            f"keras_kan.export: expected one ONNX input and output, got {len(inputs)} and "
            f"{len(graph.output)}."
        )
    renames = {inputs[0].name: INPUT_NAME, graph.output[0].name: OUTPUT_NAME}

    def rename(g):
        for node in g.node:
            for i, name in enumerate(node.input):
                if name in renames:
                    node.input[i] = renames[name]
            for i, name in enumerate(node.output):
                if name in renames:
                    node.output[i] = renames[name]
            for attr in node.attribute:
                if attr.HasField("g"):
                    rename(attr.g)
                for sub in attr.graphs:
                    rename(sub)

    rename(graph)
    for value in (inputs[0], graph.output[0]):
        value.name = renames[value.name]
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


# --- command line -----------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m keras_kan.export",
        description="Export a .keras model (saved on any backend) as a TF Serving "
                    "SavedModel, LiteRT files and ONNX. SavedModel and LiteRT need the "
                    "TensorFlow backend; when the current backend cannot write a format "
                    "the command re-runs itself with KERAS_BACKEND=tensorflow.",
    )
    parser.add_argument("model", help="the .keras file")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--format", action="append", dest="formats", metavar="FORMAT",
                        help=f"one of {', '.join(FORMATS)}; repeat for several "
                             "(default: all)")
    parser.add_argument("--version", default="1",
                        help="TF Serving version folder (positive int, default 1)")
    parser.add_argument("--quantize", action="append", metavar="MODE",
                        help="extra LiteRT variant: dynamic or int8 (repeatable)")
    parser.add_argument("--calibration", metavar="DATA.npy",
                        help="representative inputs (N, n) for --quantize int8")
    parser.add_argument("--name", help="model name (default: the .keras file's stem)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing artifacts of this name and version")
    return parser


def main(argv=None):
    """Command line: ``python -m keras_kan.export MODEL.keras OUT_DIR [options]``.

    Returns the exit status: 0 when written, 2 on invalid input (nothing
    written), 1 when a conversion failed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        formats = _check_formats(args.formats or FORMATS)
        quantize = _check_quantize(args.quantize, formats)
        try:
            version = _check_version(int(args.version))
        except ValueError:
            raise ValueError(
                "Received an invalid value for `--version`: expected a positive integer "
                f"(TF Serving's version folder), got {args.version!r}."
            ) from None
        path = _check_keras_path(args.model)
        if "int8" in quantize and args.calibration is None:
            raise ValueError(
                "--quantize int8 needs --calibration DATA.npy: representative inputs "
                "(N, n_inputs), e.g. a few hundred training samples."
            )
        if args.calibration is not None:
            _load_calibration(args.calibration)
        if args.name is not None:
            _check_name(args.name)
    except ValueError as error:
        print(f"keras_kan.export: error: {error}", file=sys.stderr)
        return 2
    missing = _unsupported(formats)
    if missing and not os.environ.get(_REEXEC_MARK):
        # A `.keras` file loads on every backend: let TensorFlow write it.
        print(f"keras_kan.export: the {keras.backend.backend()} backend cannot write "
              f"{', '.join(missing)}; re-running with KERAS_BACKEND=tensorflow",
              file=sys.stderr)
        env = dict(os.environ, KERAS_BACKEND="tensorflow", **{_REEXEC_MARK: "1"})
        return subprocess.call([sys.executable, "-m", "keras_kan.export", *argv], env=env)
    try:
        written = export_model(path, args.out_dir, formats=formats, version=version,
                               quantize=quantize or None, calibration=args.calibration,
                               name=args.name, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as error:
        print(f"keras_kan.export: error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, ImportError) as error:
        print(f"keras_kan.export: error: {error}", file=sys.stderr)
        return 1
    for key, target in written.items():
        print(f"{key:<15} {_size(target) / 1024:9.1f} KiB  {target}")
    return 0


def _size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


if __name__ == "__main__":
    sys.exit(main())
