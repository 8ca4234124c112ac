"""dnnlib.fileutil: atomic file writes (content, umask permissions, nothing left behind on failure), atomic output
folders (refuse, replace, clean up) and share_permissions."""

import os

import pytest

from dnnlib import fileutil


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["022", "077", "002"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".tmp")]


WRITE_CASES = [
    (fileutil.atomic_write_bytes, b"\x00\x01binary", b"\x00\x01binary"),
    (fileutil.atomic_write_text, "tëxt\n", "tëxt\n".encode()),
]


@pytest.mark.parametrize("write, data, on_disk", WRITE_CASES, ids=["bytes", "text"])
def test_atomic_write_content_and_permissions(tmp_path, umask, write, data, on_disk):
    path = tmp_path / "sub" / "f.bin"  # the folder is made as needed
    write(path, data)
    assert path.read_bytes() == on_disk
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's private 0600
    write(path, data * 2)  # replacing keeps working
    assert path.read_bytes() == on_disk * 2
    assert not _leftovers(path.parent)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    fileutil.atomic_write_text(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileutil.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fileutil.atomic_write_text(path, "new")
    assert path.read_text() == "old" and not _leftovers(tmp_path)


def test_output_dir_refuses_an_existing_folder_without_overwrite(tmp_path):
    out = tmp_path / "out"
    with fileutil.atomic_output_dir(out) as tmp:
        open(os.path.join(tmp, "a.txt"), "w").write("first")
    before = sorted(os.listdir(out))
    with pytest.raises(FileExistsError, match="already exists"), fileutil.atomic_output_dir(out):
        pytest.fail("the body must not run")
    assert sorted(os.listdir(out)) == before and (out / "a.txt").read_text() == "first"
    assert not _leftovers(tmp_path)


def test_output_dir_replaces_its_own_output_with_overwrite(tmp_path):
    out = tmp_path / "out"
    with fileutil.atomic_output_dir(out) as tmp:
        open(os.path.join(tmp, "a.txt"), "w").write("first")
    with fileutil.atomic_output_dir(out, overwrite=True) as tmp:
        assert (out / "a.txt").read_text() == "first"  # the old folder stays until the new one is complete
        open(os.path.join(tmp, "b.txt"), "w").write("second")
    assert not (out / "a.txt").exists() and (out / "b.txt").read_text() == "second"
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_dir_removes_its_temporary_on_an_exception(tmp_path, overwrite):
    out = tmp_path / "out"
    if overwrite:
        with fileutil.atomic_output_dir(out) as tmp:
            open(os.path.join(tmp, "a.txt"), "w").write("kept")
    with pytest.raises(RuntimeError, match="stop"), fileutil.atomic_output_dir(out, overwrite=overwrite) as tmp:
        open(os.path.join(tmp, "half.txt"), "w").write("half")
        raise RuntimeError("stop")
    assert not _leftovers(tmp_path)
    if overwrite:
        assert (out / "a.txt").read_text() == "kept" and not (out / "half.txt").exists()
    else:
        assert not out.exists()


def test_share_permissions_gives_ordinary_permissions(tmp_path, umask):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("x")
    os.chmod(root / "sub" / "f", 0o600)
    os.chmod(root / "sub", 0o700)
    os.chmod(root, 0o700)
    fileutil.share_permissions(root)
    for d in (root, root / "sub"):
        assert os.stat(d).st_mode & 0o777 == 0o777 & ~umask
    assert os.stat(root / "sub" / "f").st_mode & 0o777 == 0o666 & ~umask


def test_current_umask_reads_without_changing_it(umask):
    assert fileutil.current_umask() == umask
    assert fileutil.current_umask() == umask
