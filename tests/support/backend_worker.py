"""A Python process on another Keras backend that runs checks for the tests.

Started once per test session and backend by `tests/conftest.py` (`other_backends`):
a fresh interpreter costs 10-20 s on the 2-core machine, and the cross-backend tests
need a few dozen loads. The worker reads one JSON request per line from stdin,

    {"module": "crossload", "function": "main", "args": ["m.keras", "io.npz"]}

calls `module.function(*args)` (modules from this folder), and answers with one line
`REPLY {"rc": exit status, "out": what it printed, with a traceback if it raised}`.
Other lines on stdout (a library's own printing) are not replies.
"""

import contextlib
import importlib
import io
import json
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402,F401  (the backend starts before the first request)

import keras_kan  # noqa: E402,F401  (registers the serializable classes)


def serve(requests, replies):
    for line in requests:
        request = json.loads(line)
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                module = importlib.import_module(request["module"])
                status = getattr(module, request["function"])(*request["args"])
            reply = {"rc": int(status or 0), "out": printed.getvalue()}
        except BaseException:  # noqa: BLE001 - the test reports it
            reply = {"rc": 1, "out": printed.getvalue() + traceback.format_exc()}
        replies.write("REPLY " + json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
