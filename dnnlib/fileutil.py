"""Atomic file and directory writes (nothing half-written is ever left under the final name), output permissions, and
the rules that keep an output folder from ever replacing something this project did not write."""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import secrets
import shutil
import socket
import stat
import tempfile

from dnnlib.errors import OutputConflict

# The record of what this project wrote in a folder: every folder atomic_output_dir finishes carries it (listing
# every entry with its size and modification time), and a folder receiving an atomic_output_file gets or extends
# one. Only what a record lists, unchanged, is ever replaced.
OUTPUT_MARKER = ".stylegan3d-output"
_WRITER = "stylegan3d-tf2"


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write_stream(path):
    """Yield a binary file to write path's content into, in as many pieces as needed (a download, a stream).

    The file is a temporary one in the same folder; when the block ends without an exception it is fsynced and
    renamed onto path in one step. An exception in the block (a failed check of what was written included) removes
    it and leaves path as it was: nothing half-written is ever found under the final name.
    """
    path = os.path.abspath(os.fspath(path))
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        # mkstemp makes 0600; the result is an ordinary file that the umask governs.
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data):
    """Write bytes to path via a temporary file in the same folder, fsync and an atomic rename."""
    with atomic_write_stream(path) as f:
        f.write(data)


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def write_record(path, text):
    """Write a record file without losing an earlier, different version: that one is kept as <stem>.<n><ext>.

    Returns the path the earlier version was kept under, or None (no earlier file, or the same content).
    """
    path = os.path.abspath(os.fspath(path))
    kept = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return None
        stem, ext = os.path.splitext(path)
        n = 1
        while os.path.exists(f"{stem}.{n}{ext}"):
            n += 1
        kept = f"{stem}.{n}{ext}"
        try:  # the earlier version stays complete under its new name before the new one replaces it
            os.link(path, kept)
        except OSError:
            shutil.copy2(path, kept)
    atomic_write_text(path, text)
    return kept


def share_permissions(root):
    """Give a finished output folder the permissions a plain mkdir/open would have (umask applies).

    Temporary files and folders (mkstemp/mkdtemp) are private (0600/0700); datasets and volumes are
    meant to be read by colleagues and by jobs running as other users.
    """
    mask = current_umask()
    os.chmod(root, 0o777 & ~mask)
    for d, subdirs, files in os.walk(root):
        for name in subdirs:
            os.chmod(os.path.join(d, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(d, name), 0o666 & ~mask)


def _entries(root):
    """Every file, link and folder under root (the record itself excluded): relative path -> [size, mtime_ns] for a
    file or link, None for a folder."""
    out = {}
    for d, subdirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        for name in subdirs + files:
            r = os.path.normpath(os.path.join(rel, name))
            if r == OUTPUT_MARKER:
                continue
            st = os.lstat(os.path.join(d, name))
            out[r] = None if stat.S_ISDIR(st.st_mode) else [st.st_size, st.st_mtime_ns]
    return out


def _read_record(folder):
    """The entries a folder's record says this project wrote there (None when there is no record of ours)."""
    try:
        with open(os.path.join(folder, OUTPUT_MARKER), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("writer") != _WRITER or not isinstance(record.get("entries"), dict):
        return None
    return record["entries"]


def _write_record(folder, entries, **extra):
    atomic_write_text(os.path.join(folder, OUTPUT_MARKER),
                      json.dumps({"writer": _WRITER, **extra, "entries": entries}, sort_keys=True) + "\n")


@contextlib.contextmanager
def _record_locked(folder):
    """An exclusive lock for a read-modify-write of a folder's record. Without it, two commands adding files to one
    folder at the same moment each write back the record they read, and one file's entry is lost (that file would
    then count as foreign: kept, but never replaced). The lock is flock on the folder itself, so nothing is added
    to the user's folder; where the file system has no flock, the update goes on unlocked."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def foreign_entries(folder):
    """Entries of `folder` this project did not write: not in the folder's record, or changed since (size or
    modification time). An empty list means the folder may be replaced: everything in it was ours, unchanged.
    A record that is not ours (or unreadable) is itself foreign."""
    recorded = _read_record(folder)
    found = _entries(folder)
    foreign = [r for r, v in sorted(found.items()) if recorded is None or r not in recorded or recorded[r] != v]
    if recorded is None and os.path.lexists(os.path.join(folder, OUTPUT_MARKER)):
        foreign.insert(0, OUTPUT_MARKER)
    return foreign


def written_by_us(path):
    """True for a folder whose every entry this project wrote, as its record lists them, and that is unchanged."""
    return os.path.isdir(path) and not foreign_entries(path)


def _file_is_ours(path):
    """True when the folder holding `path` records it as a file this project wrote, unchanged since."""
    recorded = _read_record(os.path.dirname(path)) or {}
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and recorded.get(os.path.basename(path)) == [st.st_size, st.st_mtime_ns]


def _within(inner, outer):
    return os.path.commonpath([inner, outer]) == outer


def _lost(entries):
    return ", ".join(entries[:5]) + (f", ... ({len(entries)} in all)" if len(entries) > 5 else "")


def check_output(output, inputs=(), overwrite=False, kind="folder"):
    """Refuse an output whose writing could lose data; return its absolute path. The one rule for every output.

    kind: "folder" (written whole by atomic_output_dir), "file" (atomic_output_file) or "parent" (a folder in which
    the command creates a new entry of its own, e.g. training's results folder: it may hold other things).
    Refused: the file system root, the home folder, the current folder (as a folder or file output); an output that
    is or lies inside one of `inputs` (every file or folder the command reads), or, for a folder or file output,
    contains one; an existing output unless overwrite (FileExistsError), and, even with overwrite, one holding
    anything this project did not record writing, or that changed since (OutputConflict, listing what would be lost).
    """
    out = os.path.realpath(os.fspath(output))
    protected = {os.path.realpath(os.sep): "the file system root", os.path.realpath(os.path.expanduser("~")):
                 "the home folder", os.path.realpath(os.getcwd()): "the current folder"}
    if out in protected and kind != "parent":
        raise OutputConflict(f"output {output} is {protected[out]}; choose a new folder for the output")
    for inp in inputs:
        if not inp:
            continue
        real = os.path.realpath(os.fspath(inp))
        if out == real or _within(out, real) or (kind != "parent" and _within(real, out)):
            relation = "is" if out == real else ("lies inside" if _within(out, real) else "contains")
            raise OutputConflict(f"output {output} {relation} the input {inp}; choose an output apart from the inputs")
    if kind == "parent" or not os.path.lexists(out):
        return out
    if kind == "file":
        if os.path.isdir(out):
            raise FileExistsError(f"{output} is a folder; choose a file name for the output")
        if not overwrite:
            raise FileExistsError(f"{output} already exists; it is replaced only when overwriting is asked for")
        if not _file_is_ours(out):
            raise OutputConflict(f"{output} is a file this project did not write, or that changed since it wrote it; "
                                 "it is never replaced: choose a new output file")
        return out
    if not os.path.isdir(out) or os.path.islink(output):
        raise FileExistsError(f"{output} exists and is not a folder; choose a new output folder")
    if not overwrite:
        raise FileExistsError(f"{output} already exists; it is replaced only when overwriting is asked for")
    foreign = foreign_entries(out)
    if foreign:
        raise OutputConflict(f"{output} holds files this project did not write, or that changed since it wrote them "
                             f"({_lost(foreign)}); it is never replaced: choose a new output folder")
    return out


def check_output_dir(output, inputs=(), overwrite=False):
    """check_output for a folder written whole (atomic_output_dir)."""
    return check_output(output, inputs, overwrite, "folder")


def check_output_file(output, inputs=(), overwrite=False):
    """check_output for a single file (atomic_output_file)."""
    return check_output(output, inputs, overwrite, "file")


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def rename_noreplace(src, dst):
    """Rename src to dst, failing with FileExistsError when anything is at dst (never replacing it).

    Linux renameat2(RENAME_NOREPLACE) where the file system supports it; elsewhere a hard link for a file (link(2)
    never replaces) and rename(2) for a folder, which replaces only an empty folder (nothing is lost).
    """
    fn = _renameat2()
    if fn is not None:
        if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, f"{dst} appeared while this command ran; it is never replaced", dst)
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), dst)
    if os.path.isdir(src) and not os.path.islink(src):
        try:
            os.rename(src, dst)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise FileExistsError(errno.EEXIST, f"{dst} appeared while this command ran; it is never replaced",
                                      dst) from None
            raise
        return
    os.link(src, dst)
    os.unlink(src)


def _publish(tmp, final, overwrite, owned):
    """Move the finished tmp to final. Without overwrite, or when final is absent, the move never replaces what is
    there by then. With overwrite, final is first moved aside (never replacing), checked with owned(moved) to hold
    only what this project recorded writing, and deleted only after tmp took its place; anything else is put back."""
    if overwrite and os.path.lexists(final):
        parent, name = os.path.split(final)
        aside = os.path.join(parent, f".old-{name}-{secrets.token_hex(4)}")
        rename_noreplace(final, aside)
        problem = owned(aside)
        if problem:
            with contextlib.suppress(OSError):
                rename_noreplace(aside, final)
            raise OutputConflict(f"{final}: {problem}; it is never replaced"
                                 + (f" (left at {aside})" if os.path.lexists(aside) else ""))
        try:
            rename_noreplace(tmp, final)
        except BaseException as e:  # a newcomer at final, or a signal: the old output goes back if final is free
            with contextlib.suppress(OSError):
                rename_noreplace(aside, final)
            if isinstance(e, FileExistsError):
                kept = f"; the earlier output is kept at {aside}" if os.path.lexists(aside) else ""
                raise OutputConflict(f"{final} appeared while this command ran; it is never replaced{kept}") from None
            raise
        if os.path.isdir(aside) and not os.path.islink(aside):
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.unlink(aside)
        return
    try:
        rename_noreplace(tmp, final)
    except FileExistsError:
        raise OutputConflict(f"{final} appeared while this command ran; it is never replaced") from None


def _folder_owned(path):
    foreign = foreign_entries(path)
    return f"holds files this project did not write, or that changed since it wrote them ({_lost(foreign)})" \
        if foreign else None


def _stale_temporaries(parent, name):
    """Temporary folders of earlier runs for `name` whose writer process on this host is gone."""
    prefix = f".tmp-{name}-"
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry)
        if not entry.startswith(prefix) or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            with open(os.path.join(path, OUTPUT_MARKER)) as f:
                owner = json.load(f)
        except (OSError, ValueError):
            continue  # not ours to judge
        if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
            continue
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            yield path
        except PermissionError:
            pass


@contextlib.contextmanager
def atomic_output_dir(final_dir, overwrite=False, inputs=()):
    """Yield a temporary directory beside final_dir; on success it is moved to final_dir.

    final_dir is checked with check_output_dir first. On any exception the temporary directory is removed and
    final_dir is untouched. At the end the folder's record (OUTPUT_MARKER) lists every entry written, and the move
    never replaces anything that appeared at final_dir meanwhile; with overwrite, an existing final_dir is replaced
    only if it still holds nothing but what its record lists, unchanged (see _publish). Temporary folders left for
    the same output by a killed earlier run on this host are removed.
    """
    final_dir = check_output_dir(os.path.abspath(final_dir), inputs, overwrite)
    parent = os.path.dirname(final_dir)
    os.makedirs(parent, exist_ok=True)
    for stale in _stale_temporaries(parent, os.path.basename(final_dir)):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(final_dir)}-")
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        owner = {"pid": os.getpid(), "host": socket.gethostname()}
        _write_record(tmp, {}, **owner)
        yield tmp
        _write_record(tmp, _entries(tmp), **owner)
        _publish(tmp, final_dir, overwrite, _folder_owned)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_output_file(final_path, overwrite=False, inputs=()):
    """Yield a temporary file path beside final_path; on success it is moved to final_path and recorded.

    The same rule as atomic_output_dir, for one file: checked with check_output_file first; the move never replaces
    a file that appeared meanwhile; with overwrite, an existing file is replaced only if the record of its folder
    lists it, unchanged. The folder's record (OUTPUT_MARKER) then lists the new file.
    """
    final_path = check_output_file(os.path.abspath(final_path), inputs, overwrite)
    parent = os.path.dirname(final_path)
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".tmp-{os.path.basename(final_path)}-")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        yield tmp
        recorded_before = (_read_record(parent) or {}).get(os.path.basename(final_path))

        def owned(aside):
            st = os.lstat(aside)
            same = stat.S_ISREG(st.st_mode) and recorded_before == [st.st_size, st.st_mtime_ns]
            return None if same else "is a file this project did not write, or that changed since it wrote it"

        _publish(tmp, final_path, overwrite, owned)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    st = os.lstat(final_path)
    with _record_locked(parent):
        entries = _read_record(parent) or {}
        extra = {}
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(parent, OUTPUT_MARKER), encoding="utf-8") as f:
                extra = {k: v for k, v in json.load(f).items() if k in ("pid", "host")} if entries else {}
        if _read_record(parent) is None and os.path.lexists(os.path.join(parent, OUTPUT_MARKER)):
            return  # a record that is not ours is left alone: the file stays unrecorded, so it is never replaced
        entries[os.path.basename(final_path)] = [st.st_size, st.st_mtime_ns]
        _write_record(parent, entries, **extra)


def write_output_file(final_path, data, overwrite=False, inputs=()):
    """Write bytes (or text) to a single output file under atomic_output_file's rule."""
    with atomic_output_file(final_path, overwrite, inputs) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
