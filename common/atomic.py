"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Also the inter-process lock (``file_lock``) that serialises one-time set-up such as
creating a store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Does a process with this pid exist on this machine?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphan_temporaries(target: Path) -> list[Path]:
    """Remove ``target``'s temporary files left by killed writers (their pid is dead)."""
    removed = []
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        pid = tmp.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    On any exception the temporary file is removed and ``target`` is untouched. The
    temporary name carries the writer's pid, so a later write removes what a killed
    writer left; the result gets the usual permissions (umask), not mkstemp's 0600.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_orphan_temporaries(target)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(0o666 & ~_umask())
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) across processes.

    The kernel releases it when its holder dies, so a killed process never leaves it held.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


SCRATCH_PREFIX = "tradingbot-"


def scratch_root() -> Path:
    """This user's folder of working folders in the system's temporary directory."""
    root = Path(tempfile.gettempdir()) / f"{SCRATCH_PREFIX}{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def sweep_scratch(root: Path | None = None) -> list[Path]:
    """Remove the working folders of processes that are gone (killed before their
    ``finally`` ran); returns them. Folders of live processes are left alone."""
    removed = []
    for folder in (root or scratch_root()).iterdir():
        pid = folder.name.split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def scratch_dir(purpose: str) -> Iterator[Path]:
    """A private working folder (``<tmp>/tradingbot-<uid>/<pid>-<purpose>-<random>``),
    removed on exit. A killed command cannot remove its own, so every new one first
    removes those whose process is gone: nothing a kill left stays past the next command
    (a plain ``TemporaryDirectory`` would stay until the machine is cleaned)."""
    root = scratch_root()
    sweep_scratch(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{purpose}-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
