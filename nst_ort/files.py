"""Atomic file writes: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nst_ort.errors import FAILURE, NstError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    On any failure the temporary file is removed and `path` is left as it was. A full disk or an
    unwritable folder becomes a one-line NstError.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except FileNotFoundError:
        raise NstError(f"{path.parent}: no such folder") from None
    except PermissionError:
        raise NstError(f"{path.parent}: folder is not writable") from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private; give it the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NstError(f"{path}: no space left on the device", FAILURE) from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise NstError(f"{path}: cannot write ({exc.strerror})") from None
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
