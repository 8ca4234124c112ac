"""dnnlib.digest.sha256_path against hashlib over the bytes as documented: a file's content, or a folder's files in
sorted order (with their relative paths when names=True)."""

import hashlib

from dnnlib.digest import CHUNK, sha256_bytes, sha256_path


def test_a_file_is_the_sha256_of_its_bytes_across_chunks(tmp_path):
    data = bytes(range(256)) * (CHUNK // 256 * 2 + 3)  # more than two chunks, not a multiple of one
    (tmp_path / "f.bin").write_bytes(data)
    assert sha256_path(str(tmp_path / "f.bin")) == hashlib.sha256(data).hexdigest()
    assert sha256_path(str(tmp_path / "f.bin"), names=True) == hashlib.sha256(data).hexdigest()


def test_a_folder_is_its_files_in_sorted_order_with_names_only_when_asked(tmp_path):
    folder = tmp_path / "series"
    (folder / "sub").mkdir(parents=True)
    files = {"b.dcm": b"second", "a.dcm": b"first", "sub/c.dcm": b"third"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    order = sorted(files, key=lambda n: str(folder / n))
    assert sha256_path(str(folder)) == hashlib.sha256(b"".join(files[n] for n in order)).hexdigest()
    named = hashlib.sha256(b"".join(n.encode() + files[n] for n in order)).hexdigest()
    assert sha256_path(str(folder), names=True) == named
    (folder / "a.dcm").rename(folder / "a0.dcm")  # same bytes, same order: only the named digest changes
    assert sha256_path(str(folder)) == hashlib.sha256(b"".join(files[n] for n in order)).hexdigest()
    assert sha256_path(str(folder), names=True) != named


def test_bytes_and_the_same_bytes_in_a_file_give_one_digest(tmp_path):
    data = b"\x00\x01stored volume" * 1000
    (tmp_path / "f.bin").write_bytes(data)
    assert sha256_bytes(data) == sha256_path(str(tmp_path / "f.bin"))
    assert sha256_bytes(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # the known value
