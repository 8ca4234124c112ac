"""A quiet TensorFlow start-up that keeps real warnings.

TensorFlow's C++ libraries print their start-up lines (oneDNN notice, "Could not find cuda drivers", "failed call
to cuInit" on CPU machines, ...) before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot silence them.
While TensorFlow is imported and its devices are first listed, file descriptor 2 is sent to a temporary file;
afterwards every captured line that is not one of the known start-up notices is written to stderr again.
"""

import contextlib
import os
import re
import sys
import tempfile

# Start-up notices of TensorFlow's C++ side that say nothing actionable (checked on TF 2.16-2.21, CPU and GPU).
NOISE_PATTERNS = tuple(re.compile(p) for p in (
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"oneDNN custom operations are on",
    r"Could not find cuda drivers on your machine",
    r"failed call to cuInit",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning: Could not find TensorRT",
    r"could not open file to read NUMA node",
    r"Your kernel may have been built without NUMA support",
))


def is_noise(line):
    """True for a known TensorFlow start-up notice."""
    return any(p.search(line) for p in NOISE_PATTERNS)


def without_noise(text):
    """The lines of `text` that are not known start-up notices (line ends kept)."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))


@contextlib.contextmanager
def filtered_stderr_fd():
    """Capture file descriptor 2 (C++ and Python writes alike) and re-emit all but the start-up notices on exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    # A file, not a pipe: a pipe nobody reads would block the writer once its buffer fills.
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = without_noise(capture.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _QuietTensorFlowFinder:
    """A sys.meta_path entry that runs the first `import tensorflow`, wherever it happens, inside
    filtered_stderr_fd, then removes itself. The front ends import TensorFlow lazily, after flag validation, so a
    flag error still comes back without loading it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, exec_module = spec.loader, spec.loader.exec_module

        def quiet_exec_module(module):
            # Shadows the method on this one loader instance, then restores it: the loader stays the real one.
            del loader.exec_module
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
            with filtered_stderr_fd():
                exec_module(module)
                module.config.list_physical_devices()

        loader.exec_module = quiet_exec_module
        return spec


def install():
    """Make the first `import tensorflow` of this process quiet (no-op when TensorFlow is loaded already)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
