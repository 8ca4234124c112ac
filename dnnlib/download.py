"""Download a file once into a cache, verified against a pinned sha256.

The file is streamed into a temporary file next to its final place, hashed on the way, and renamed into place only
when its sha256 equals the pinned one: the cache never holds a partial or unverified file under the final name. A
cached file whose hash matches is reused without touching the network. urllib only: no extra dependency.

Cache folder: $STYLEGAN3D_CACHE, else $XDG_CACHE_HOME/stylegan3d, else ~/.cache/stylegan3d.
"""

import hashlib
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from dnnlib.digest import CHUNK, sha256_path
from dnnlib.errors import InputError
from dnnlib.fileutil import atomic_write_stream

CACHE_ENV = "STYLEGAN3D_CACHE"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir():
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "stylegan3d")


def _check_pin(sha256, url):
    pin = str(sha256 or "").strip().lower()
    if not _HEX64.match(pin):
        raise InputError(f"{url}: a pinned sha256 (64 hex digits) is required to download it, got {sha256!r}")
    return pin


def cached_path(url, cache_dir=None, filename=None):
    """Where download() keeps url's file."""
    name = filename or os.path.basename(urllib.parse.urlparse(url).path)
    if not name or name in (".", ".."):
        raise InputError(f"{url}: cannot derive a file name from it; pass filename")
    return os.path.join(os.path.abspath(cache_dir or default_cache_dir()), name)


def download(url, sha256, cache_dir=None, filename=None, timeout=60.0, progress=True, log=None):
    """Path of url's file in the cache, fetched if absent and always verified against sha256.

    Raises ValueError (naming the URL, the expected and the actual hash) when the content differs from the pin, and
    OSError when the server or the network fails; in both cases nothing is left in the cache.
    """
    pin = _check_pin(sha256, url)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    path = cached_path(url, cache_dir, filename)
    if os.path.isfile(path):
        actual = sha256_path(path)
        if actual == pin:
            return path
        # A stale or damaged copy (not one we verified): fetch again and replace it atomically.
        log(f"{path}: sha256 {actual} is not the pinned {pin}; downloading it again")
    # Refused content raises inside the block, so the temporary file goes and the cache keeps nothing of it.
    with atomic_write_stream(path) as out:
        actual, size = _stream(url, out, timeout, progress)
        if actual != pin:
            raise InputError(f"{url}: downloaded content has sha256 {actual}, expected the pinned {pin}; "
                             "nothing was cached")
    log(f"fetched {url} -> {path} ({size} bytes, sha256 {actual})")
    return path


def _stream(url, out, timeout, progress):
    h = hashlib.sha256()
    size, total = 0, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            last = 0.0
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
                now = time.monotonic()
                if progress and (now - last > 0.5 or size == total):
                    last = now
                    done = f"{size / 2**20:.1f}" + (f"/{total / 2**20:.1f}" if total else "")
                    print(f"\rdownloading {url}: {done} MiB", end="", file=sys.stderr, flush=True)
            if progress:
                print(file=sys.stderr, flush=True)
    except urllib.error.HTTPError as e:
        raise OSError(f"{url}: server answered HTTP {e.code} {e.reason}; nothing was cached") from None
    except urllib.error.URLError as e:
        raise OSError(f"{url}: could not download ({e.reason}); nothing was cached") from None
    except OSError as e:  # timeouts and dropped connections while reading
        raise OSError(f"{url}: download failed ({type(e).__name__}: {e}); nothing was cached") from None
    if total is not None and size != total:
        raise OSError(f"{url}: connection closed after {size} of {total} bytes; nothing was cached")
    return h.hexdigest(), size
