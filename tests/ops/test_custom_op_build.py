"""dnnlib/ops/custom_op_build.py: a cached library is loaded only when nobody else could have written it."""

import os
import shutil
import subprocess

import pytest

from dnnlib.ops import custom_op_build

pytestmark = pytest.mark.skipif(custom_op_build._compiler() is None, reason="no C++ compiler")

# A minimal op: the smallest source that exercises the real build and load path.
_OP_SOURCE = r"""
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
using namespace tensorflow;
REGISTER_OP("PlusOne").Input("x: float").Output("y: float");
class PlusOneOp : public OpKernel {
 public:
  explicit PlusOneOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor& x = c->input(0);
    Tensor* y = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, x.shape(), &y));
    auto xf = x.flat<float>();
    auto yf = y->flat<float>();
    for (int64_t i = 0; i < xf.size(); ++i) yf(i) = xf(i) + 1.0f;
  }
};
REGISTER_KERNEL_BUILDER(Name("PlusOne").Device(DEVICE_CPU), PlusOneOp);
"""

# Stands for code someone else planted: it leaves a file behind if it ever runs.
_PLANTED_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
  FILE* f = fopen(getenv("PLANTED_MARKER"), "w");
  if (f) { fputs("ran", f); fclose(f); }
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The op built once into a private cache: (source path, cache dir, library path)."""
    root = tmp_path_factory.mktemp("ops")
    source = root / "plus_one.cc"
    source.write_text(_OP_SOURCE)
    cache = root / "cache"
    mp = pytest.MonkeyPatch()
    mp.setenv("DNNLIB_CACHE_DIR", str(cache))
    custom_op_build._loaded.clear()
    module = custom_op_build.load(str(source), required_op="plus_one")
    assert module is not None
    assert float(module.plus_one([1.0])[0]) == 2.0
    yield str(source), str(cache), custom_op_build.library_path(str(source))
    mp.undo()


@pytest.fixture()
def fresh(built, monkeypatch, tmp_path):
    """A new process's view (nothing loaded yet) of a copy of the built cache; returns (source, library path)."""
    source, cache, library = built
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy, symlinks=True)
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(copy))
    monkeypatch.setenv("PLANTED_MARKER", str(tmp_path / "planted-ran"))
    monkeypatch.setattr(custom_op_build, "_loaded", {})
    return source, custom_op_build.library_path(source)


def _plant(path, tmp_path):
    """Replace path with a library whose constructor writes $PLANTED_MARKER."""
    src = tmp_path / "planted.c"
    src.write_text(_PLANTED_SOURCE)
    subprocess.run(["gcc", "-shared", "-fPIC", str(src), "-o", str(path)], check=True)


def test_a_normal_build_loads_from_owner_only_folders(built):
    # The build and load themselves are checked by the fixture (the op computes x + 1).
    _, cache, library = built
    for folder in (cache, os.path.dirname(library)):
        assert os.stat(folder).st_mode & 0o077 == 0


# How someone else's library could sit at the cache path: each must be refused before any of its code runs.
PLANTINGS = [
    ("other user", lambda p: os.chown(p, 12345, 12345)),
    ("world-writable file", lambda p: os.chmod(p, 0o666)),
    ("group-writable file", lambda p: os.chmod(p, 0o775)),
    ("world-writable folder", lambda p: os.chmod(os.path.dirname(p), 0o777)),
    ("folder of another user", lambda p: os.chown(os.path.dirname(p), 12345, 12345)),
]


@pytest.mark.parametrize("how,make_foreign", PLANTINGS, ids=[p[0] for p in PLANTINGS])
def test_a_planted_library_is_not_loaded(fresh, tmp_path, how, make_foreign):
    if os.getuid() != 0 and "user" in how:
        pytest.skip("changing a file's owner needs root")
    source, library = fresh
    _plant(library, tmp_path)
    make_foreign(library)
    assert custom_op_build.load(source, required_op="plus_one") is None
    assert not (tmp_path / "planted-ran").exists()


def test_a_symlink_in_the_cache_is_not_followed(fresh, tmp_path):
    source, library = fresh
    elsewhere = tmp_path / "elsewhere.so"
    _plant(elsewhere, tmp_path)
    os.remove(library)
    os.symlink(elsewhere, library)
    assert custom_op_build.load(source, required_op="plus_one") is None
    assert not (tmp_path / "planted-ran").exists()


def test_a_library_without_the_op_falls_back(fresh, tmp_path):
    source, library = fresh
    _plant(library, tmp_path)  # ours by every check, but it registers no op
    assert custom_op_build.load(source, required_op="plus_one") is None


def test_the_key_covers_compiler_path_and_flags(built, monkeypatch, tmp_path):
    source, _, library = built
    monkeypatch.setattr(custom_op_build, "_STD_FLAGS", custom_op_build._STD_FLAGS + ["-DEXTRA"])
    assert custom_op_build.library_path(source) != library
    monkeypatch.undo()
    # The same compiler under another path is another key.
    other = tmp_path / "g++"
    os.symlink(custom_op_build._compiler(), other)
    assert custom_op_build.library_path(source, cxx=str(other)) != library
