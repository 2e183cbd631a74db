"""Atomic file output and run-time helpers shared by all stages."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported inside the functions that use it: data jobs never load it
    pass


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def npz_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Shape of every array of an .npz from the .npy headers alone (nothing is loaded); {} when the file
    is absent or not an npz."""
    import zipfile

    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".npy"):
                    with archive.open(name) as member:
                        version = np.lib.format.read_magic(member)
                        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0)
                        shape, _, _ = read_header(member)
                    shapes[name[: -len(".npy")]] = tuple(shape)
    except (OSError, zipfile.BadZipFile, ValueError):
        return {}
    return shapes


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save, atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_json(path: str | Path, obj: Any) -> None:
    """Pretty JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


class FileCheckpoint:
    """A training checkpoint in one file (`pae.science.train.fit`): read with torch.load, written atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(path)

    def load(self) -> dict[str, Any] | None:
        import torch

        if not self.path.exists():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            raise ValueError(
                f"checkpoint {self.path} is unreadable or corrupt ({type(err).__name__}); "
                "delete it to restart this training from scratch"
            ) from err

    def save(self, state: dict[str, Any]) -> None:
        save_torch(self.path, state)


@contextlib.contextmanager
def library_log_handler(stream: Any, level: int = 20) -> Iterator[None]:
    """While active, the records of logger "pae" (level INFO = 20 and above) are written to `stream`, one
    message per line."""
    import logging

    logger = logging.getLogger("pae")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level, old_level) if old_level else level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@contextlib.contextmanager
def redirect_output(log_path: str | Path | None) -> Iterator[None]:
    """Send stdout/stderr (prints, tqdm, warnings) and the library's `logging` records (logger "pae", INFO and
    above) of a rule's script to its log file, line-buffered."""
    if not log_path:
        yield
        return
    import sys

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as fh, library_log_handler(fh):
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        try:
            yield
        except BaseException:
            import traceback

            traceback.print_exc(file=fh)  # the error belongs in the rule's log too, not only on stderr
            raise
        finally:
            sys.stdout, sys.stderr = old
