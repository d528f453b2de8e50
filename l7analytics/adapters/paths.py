"""Paths given on the command line, checked before any work.

A bad output path found after an hour of extraction wastes the hour and may leave half the
outputs written; found first, it is one line and exit status 2 with nothing written. Write
access is *tried* (a temporary file is created and removed in the nearest existing
directory), because permission bits say nothing for root, ``os.access`` misses ACLs and
read-only mounts, and a pseudo-filesystem such as ``/sys`` refuses new files whatever the bits.

Files are identified by device and inode, so the same file under two names (a symlink, a hard
link, ``./x`` and ``x``) is recognized as one.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from l7analytics.core.errors import ConfigError

FileId = tuple[int, int] | str


def _stat(path: Path, flag: str, shown: object) -> os.stat_result | None:
    """``os.stat`` of ``path``; ``None`` when it does not exist (or a file is in the way)."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError as exc:  # an embedded NUL byte
        raise ConfigError(f"{flag} {shown}: not a usable path ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{flag} {shown}: cannot look at {path}: {exc.strerror}") from None


def nearest_directory(path: Path, flag: str, shown: object) -> Path:
    """The deepest existing one of ``path`` and its parents; a file in the way is an error
    (``--alerts notes.txt/alerts.ndjson`` would otherwise fail only when writing)."""
    for candidate in (path, *path.parents):
        found = _stat(candidate, flag, shown)
        if found is None:
            continue
        if not stat.S_ISDIR(found.st_mode):
            raise ConfigError(f"{flag} {shown}: {candidate} is not a directory")
        return candidate
    return Path(".")


def check_writable_dir(directory: str | os.PathLike[str], flag: str, shown: object = None) -> None:
    """Fail unless ``directory`` exists or can be created, and files can be created in it."""
    shown = directory if shown is None else shown
    existing = nearest_directory(Path(directory), flag, shown)
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".l7analytics-probe-")
    except OSError as exc:
        raise ConfigError(f"{flag} {shown}: cannot write in {existing}: {exc.strerror}") from None
    os.close(handle)
    os.unlink(probe)


def check_output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """``path`` as a :class:`Path` if a file can be written there (it need not exist yet)."""
    if not str(path).strip():
        raise ConfigError(f"{flag}: give a file name")
    target = Path(path)
    found = _stat(target, flag, path)
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise ConfigError(f"{flag} {path}: exists and is not a regular file")
    check_writable_dir(target.parent, flag, path)
    return target


def file_id(path: str | os.PathLike[str]) -> FileId:
    """Device and inode of an existing file, else the absolute normalized path."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return os.path.abspath(path)
    return (found.st_dev, found.st_ino)


def unique_files(paths: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Each file once, in order, and the repeats as ``(repeat, first name)`` pairs.

    ``--input a --input a`` would read every document twice: twice the requests, every scan
    threshold reached at half the real rate. A file is read once whatever it is called.
    """
    first: dict[FileId, str] = {}
    kept: list[str] = []
    repeats: list[tuple[str, str]] = []
    for path in paths:
        key = file_id(path)
        if key in first:
            repeats.append((path, first[key]))
            continue
        first[key] = path
        kept.append(path)
    return kept, repeats


def check_distinct(inputs: Iterable[str], outputs: Sequence[tuple[str, str]]) -> None:
    """No output is an input or another output (``--quarantine logs.ndjson`` would replace
    the very file being read). ``outputs`` are ``(flag, path)`` pairs."""
    seen: dict[FileId, str] = {file_id(p): f"--input {p}" for p in inputs}
    for flag, path in outputs:
        key = file_id(path)
        if key in seen:
            raise ConfigError(f"{flag} {path}: is also {seen[key]}; give another file")
        seen[key] = f"{flag} {path}"
