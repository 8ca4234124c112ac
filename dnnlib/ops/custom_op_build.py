"""Build a C++ TensorFlow op library at first use and cache it (StyleGAN2's custom_ops, for CPU kernels).

The library is compiled with g++ against the installed TensorFlow's headers, for this machine's CPU
(-march=native), into a cache directory keyed by the source, TensorFlow's version and flags, the compiler
and the CPU, so a home directory shared by different cluster nodes never loads a library built for
another CPU. Set DNNLIB_CACHE_DIR to move the cache (default ~/.cache/dnnlib). If anything fails (no
compiler, read-only cache) the caller gets None and a warning, and falls back to its TensorFlow-ops path.
"""

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading

from absl import logging

_lock = threading.Lock()
_loaded = {}  # source path -> op module or None


def cache_dir():
    return os.environ.get("DNNLIB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dnnlib")


def _cpu_signature():
    """Model name and flags of this CPU: -march=native code must not be reused on another CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _compiler():
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _build(source, target, cxx):
    import tensorflow as tf

    cmd = [cxx, "-std=c++17", "-shared", "-fPIC", "-O3", "-march=native", source, "-o", target,
           *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def load(source):
    """The op module of C++ file `source` (tf.load_op_library), built if not cached; None if that fails."""
    with _lock:
        if source in _loaded:
            return _loaded[source]
        _loaded[source] = None
        try:
            _loaded[source] = _load(source)
        except Exception as e:  # noqa: BLE001 - any failure means: use the TensorFlow-ops path
            logging.warning("custom op %s unavailable, using TensorFlow ops instead: %s", source, e)
        return _loaded[source]


def _load(source):
    import tensorflow as tf

    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) on PATH")
    with open(source, "rb") as f:
        code = f.read()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    for part in (code, tf.__version__, tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(), version,
                 _cpu_signature()):
        key.update(repr(part).encode())
    name = os.path.splitext(os.path.basename(source))[0]
    target = os.path.join(cache_dir(), "ops", f"{name}-{key.hexdigest()[:16]}.so")
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        logging.info("building %s -> %s (once per machine and TensorFlow version)", source, target)
        # Build beside the target and rename: concurrent processes never load a half-written library.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
        os.close(fd)
        try:
            _build(source, tmp, cxx)
            os.chmod(tmp, 0o755)  # mkstemp's 0600 would keep other users of a shared cache from loading it
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return tf.load_op_library(target)
