"""Build a C++ TensorFlow op library at first use and cache it (StyleGAN2's custom_ops, for CPU kernels).

The library is compiled with g++ against the installed TensorFlow's headers, for this machine's CPU
(-march=native), into a per-user cache keyed by the source, TensorFlow's version and flags, the compiler's path,
version and every flag of the command, and the CPU, so a home directory shared by different cluster nodes never
loads a library built for another CPU. Set DNNLIB_CACHE_DIR to move the cache (default ~/.cache/dnnlib).

Loading a shared library runs its code, so a cached library is loaded only if nobody else could have written it:
the file and every folder from it up to the cache root must be owned by this user (or root), writable by nobody
else, and not symbolic links; the file is opened without following links and the checked descriptor is what gets
loaded. If anything fails (no compiler, a cache that fails those checks, a library without the expected op) the
caller gets None and one warning, and falls back to its TensorFlow-ops path.
"""

import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading

from absl import logging

_lock = threading.Lock()
_loaded = {}  # source path -> op module or None
_library_fds = []  # descriptors of loaded libraries, kept open (see _load)
_STD_FLAGS = ["-std=c++17", "-shared", "-fPIC", "-O3", "-march=native"]


def cache_dir():
    return os.environ.get("DNNLIB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dnnlib")


def cpu_signature():
    """Model name and flags of this CPU: -march=native code must not be reused on another CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _compiler():
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    return shutil.which(cxx) if cxx else None


def _build_command(source, target, cxx):
    import tensorflow as tf

    return [cxx, *_STD_FLAGS, source, "-o", target, *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]


def library_path(source, cxx=None):
    """Where the cached library of `source` lives for this compiler, TensorFlow and CPU."""
    import tensorflow as tf

    cxx = cxx or _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) on PATH")
    with open(source, "rb") as f:
        code = f.read()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    # The command with placeholder paths: every flag and the compiler's own path are part of the key.
    for part in (code, tf.__version__, _build_command("SOURCE", "TARGET", cxx), version, cpu_signature()):
        key.update(repr(part).encode())
    name = os.path.splitext(os.path.basename(source))[0]
    return os.path.join(cache_dir(), "ops", f"{name}-{key.hexdigest()[:16]}.so")


def _check_owned(st, path):
    """Raise PermissionError unless `st` (an lstat result) is ours or root's and writable only by its owner."""
    if stat.S_ISLNK(st.st_mode):
        raise PermissionError(f"{path} is a symbolic link")
    if st.st_uid not in (os.getuid(), 0):
        raise PermissionError(f"{path} belongs to another user (uid {st.st_uid})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})")


def check_folders(target):
    """Every folder from the library's up to the cache root passes _check_owned."""
    root = os.path.abspath(cache_dir())
    folder = os.path.dirname(os.path.abspath(target))
    while True:
        _check_owned(os.lstat(folder), folder)
        if folder == root or os.path.dirname(folder) == folder:
            return
        folder = os.path.dirname(folder)


def make_private_dirs(path):
    """Create the missing cache folders owner-only (an existing folder is checked before use, not changed)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    make_private_dirs(os.path.dirname(path))
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def open_checked(target):
    """An O_NOFOLLOW descriptor of target after the ownership checks of the file (through it) and its folders."""
    check_folders(target)
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PermissionError(f"{target} is not a regular file")
        _check_owned(st, target)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _build(source, target, cxx):
    cmd = _build_command(source, target, cxx)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def load(source, required_op=None):
    """The op module of C++ file `source` (tf.load_op_library), built if not cached; None if that fails.

    required_op: name of an op function the module must have (a library that lacks it is not used).
    """
    with _lock:
        if source in _loaded:
            return _loaded[source]
        _loaded[source] = None
        try:
            module = _load(source)
            if required_op is not None and not hasattr(module, required_op):
                raise RuntimeError(f"the cached library has no op {required_op!r}")
            _loaded[source] = module
        except Exception as e:  # noqa: BLE001 - any failure means: use the TensorFlow-ops path
            logging.warning("custom op %s unavailable, using TensorFlow ops instead: %s", source, e)
        return _loaded[source]


def _load(source):
    import tensorflow as tf

    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) on PATH")
    target = library_path(source, cxx)
    if not os.path.lexists(target):
        make_private_dirs(os.path.dirname(target))
        check_folders(target)
        logging.info("building %s -> %s (once per machine and TensorFlow version)", source, target)
        # Build beside the target and rename: concurrent processes never load a half-written library.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
        os.close(fd)
        try:
            _build(source, tmp, cxx)
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    fd = open_checked(target)
    try:
        # Load exactly the file that was checked, whatever happens to the path afterwards. The descriptor stays open
        # for the life of the process: TensorFlow caches libraries by path, so a /proc/self/fd/N path must never be
        # reused for another library.
        module = tf.load_op_library(f"/proc/self/fd/{fd}")
    except BaseException:
        os.close(fd)
        raise
    _library_fds.append(fd)
    return module


class LazyLibrary:
    """A C++ op library built and loaded on first call, its gradients registered once; None where it cannot be
    built. Thread-safe: tf.distribute traces replicas in threads, and a gradient may be registered only once."""

    def __init__(self, source, required_op, gradients):
        self.source, self.required_op, self.gradients = source, required_op, dict(gradients)
        self._lib = None  # None: not tried yet; False: cannot be built here
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            if self._lib is None:
                lib = load(self.source, required_op=self.required_op)
                if lib is not None:
                    import tensorflow as tf

                    for op_type, grad in self.gradients.items():
                        tf.RegisterGradient(op_type)(grad)
                self._lib = lib if lib is not None else False
        return self._lib or None


# ----------------------------------------------------------------------------------------------
# Where a C++ op may be used: the one rule of every kernel here.


def in_xla_compile():
    """True while tracing for XLA (jit_compile), which cannot compile a custom op."""
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # private modules; without them assume no XLA
        return False
    return control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph())


def in_saved_model_save():
    """True while tf.saved_model.save traces: a graph holding the C++ kernel would not load where that kernel
    is not built (TF Serving, a GPU server)."""
    try:
        from tensorflow.python.saved_model import save_context
    except ImportError:  # private module; without it assume no export
        return False
    return save_context.in_save_context()


def kernel_path(dtype, gpu, kernel_builds, xla=None, export=None):
    """'kernel' (the C++ op) or 'tf_ops' for a graph traced with these facts: the kernel only on CPU, for
    float32/64, outside XLA (which cannot compile a custom op) and SavedModel exports (which must load where it is
    not built). xla/export: None = ask the current trace. kernel_builds: a callable, asked last because its first
    call builds the kernel."""
    import tensorflow as tf

    xla = in_xla_compile() if xla is None else xla
    export = in_saved_model_save() if export is None else export
    if tf.as_dtype(dtype) not in (tf.float32, tf.float64) or gpu or xla or export:
        return "tf_ops"
    return "kernel" if kernel_builds() else "tf_ops"
