"""Reading user arrays and writing artefacts atomically.

Outputs are written to a temporary name in the destination folder and renamed into place, so an
interrupted or failed command never leaves a partial file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

import numpy as np

from spikegate.errors import InputArrayError, SpikegateError


def load_array(path: str, what: str = "--inputs") -> np.ndarray:
    if not os.path.exists(path):
        raise InputArrayError(f"{what} {path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise InputArrayError(f"{what} {path}: not a plain .npy array ({str(e).splitlines()[0][:120]})") from None
    except (OSError, EOFError) as e:
        raise InputArrayError(f"{what} {path}: cannot read as .npy ({e})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise InputArrayError(f"{what} {path}: is an .npz archive; pass a single .npy array")
    return arr


def check_images(arr: np.ndarray, channels: int, path: str, what: str = "--inputs",
                 size: int | None = None) -> np.ndarray:
    """Validate a float image batch ``[B, C, H, W]`` for a model with ``channels`` input channels."""
    if arr.dtype.kind not in "fiu":
        raise InputArrayError(f"{what} {path}: dtype {arr.dtype} is not numeric; expected float32 [B, C, H, W]")
    if arr.ndim != 4:
        raise InputArrayError(
            f"{what} {path}: has rank {arr.ndim} (shape {tuple(arr.shape)}); expected [B, C, H, W]")
    if arr.shape[1] != channels:
        raise InputArrayError(
            f"{what} {path}: has {arr.shape[1]} channels (shape {tuple(arr.shape)}); the model takes "
            f"{channels}")
    if arr.shape[0] == 0:
        raise InputArrayError(f"{what} {path}: holds no samples (B = 0)")
    if size is not None and (arr.shape[2] != size or arr.shape[3] != size):
        raise InputArrayError(
            f"{what} {path}: images are {arr.shape[2]}x{arr.shape[3]}; the model was built for {size}x{size}")
    if arr.shape[2] < 8 or arr.shape[3] < 8:
        raise InputArrayError(f"{what} {path}: images of {arr.shape[2]}x{arr.shape[3]} are smaller than 8x8")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise InputArrayError(f"{what} {path}: contains NaN or Inf values")
    return arr


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    d = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(d):
        raise SpikegateError(f"{path}: output folder {d} does not exist")
    if os.path.isdir(path):
        raise SpikegateError(f"{path}: is a directory; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix or os.path.splitext(path)[1], dir=d)
    except OSError as e:
        raise SpikegateError(f"{path}: cannot write in {d} ({e.strerror or e})") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; outputs get normal permissions
        os.replace(tmp, path)
    except OSError as e:
        raise SpikegateError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_npy(path: str, arr: np.ndarray) -> None:
    with atomic_path(path, ".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def write_json(path: str, obj) -> None:
    with atomic_path(path, ".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=False)
            f.write("\n")
