"""Import TensorFlow without its two start-up lines; every other line of stderr shows.

TensorFlow 2.21's C++ core prints, twice, while it loads and whatever
TF_CPP_MIN_LOG_LEVEL says:

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see slightly ...

Both are informational. `import_quietly` sends stderr through a filter process
while the modules load: the filter drops exactly those lines and forwards
everything else at once, so a warning or an error (even a crash of this process
during the import) still reaches the terminal. The switch that would silence the
second line, TF_ENABLE_ONEDNN_OPTS=0, changes TensorFlow's kernels: not used.
"""

import os
import subprocess
import sys

NOISE = (b"WARNING: All log messages before absl::InitializeLog() is called",
         b"port.cc:153] oneDNN custom operations are on.")

_FILTER = f"""
import sys
noise = {NOISE!r}
for line in sys.stdin.buffer:
    if not any(n in line for n in noise):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


def import_quietly(*names):
    """Import the modules `names` (returned in order) with TensorFlow's start-up lines
    dropped from stderr. A plain import where TensorFlow (or every module) is loaded."""
    if "tensorflow" in sys.modules or all(name in sys.modules for name in names):
        return [__import__(name) for name in names]
    sys.stderr.flush()
    filter_process = subprocess.Popen([sys.executable, "-c", _FILTER], stdin=subprocess.PIPE,
                                      stdout=2)
    saved = os.dup(2)
    os.dup2(filter_process.stdin.fileno(), 2)
    try:
        return [__import__(name) for name in names]
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        filter_process.stdin.close()
        filter_process.wait()
