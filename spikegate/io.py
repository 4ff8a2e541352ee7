"""Reading user arrays and writing artefacts atomically.

Outputs are written to a temporary name in the destination folder and renamed into place, so an
interrupted or failed command never leaves a partial file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
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


# Kernel interfaces: writing there is never what a user means (and can reconfigure the machine).
PSEUDO_FILESYSTEMS = ("/proc", "/sys")


def check_output_path(path: str, kind: str = "file", what: str = "") -> str:
    """Refuse an output path that cannot hold what a verb writes, with one line naming the fix.

    ``kind`` is ``"file"`` (an artefact written atomically) or ``"dir"`` (a folder the verb
    creates or fills: ``compile -o``, ``golden --trace``). Checked: not under /proc or /sys; an
    existing target is of the expected kind (a regular file, or a folder) and writable; the
    parent folder exists, is a folder and is writable. Every verb that writes calls this before
    doing any work, so a bad path costs nothing and leaves nothing behind. Returns ``path``.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', not {kind!r}")
    name = f"{what} {path}".strip()
    if not str(path):
        raise SpikegateError(f"{what or 'output'}: empty path")
    real = os.path.realpath(os.path.abspath(path))
    for root in PSEUDO_FILESYSTEMS:
        if real == root or real.startswith(root + os.sep):
            raise SpikegateError(f"{name}: is under {root}, a kernel interface, not a place for output; "
                                 f"choose a path in an ordinary folder")
    if os.path.exists(real):
        mode = os.stat(real).st_mode
        if kind == "file":
            if stat.S_ISDIR(mode):
                raise SpikegateError(f"{name}: is a directory; give a file name")
            if not stat.S_ISREG(mode):
                raise SpikegateError(f"{name}: is not a regular file (a device, pipe or socket); "
                                     f"give a file name")
            if not os.access(real, os.W_OK):
                raise SpikegateError(f"{name}: exists and is not writable")
        else:
            if not stat.S_ISDIR(mode):
                raise SpikegateError(f"{name}: is an existing file, not a folder; give a folder name "
                                     f"(it is created if missing)")
            if not os.access(real, os.W_OK | os.X_OK):
                raise SpikegateError(f"{name}: folder is not writable")
    parent = os.path.dirname(real) or "."
    if not os.path.isdir(parent):
        if os.path.exists(parent):
            raise SpikegateError(f"{name}: output folder {parent} does not exist ({parent} is a file)")
        raise SpikegateError(f"{name}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpikegateError(f"{name}: output folder {parent} is not writable")
    return path


def warn_input_range(x: np.ndarray, path: str, trained: tuple[float, float] | None,
                     what: str = "inputs", source: str = "the model was trained on") -> bool:
    """One warning line on stderr when ``x`` leaves the value range the model expects.

    Nothing stops a model from classifying an unnormalised image (pixels 0..255 instead of 0..1);
    it just answers nonsense, typically the same class for every image. Returns whether it warned.
    """
    if trained is None or x.size == 0:
        return False
    lo, hi = float(np.min(x)), float(np.max(x))
    tlo, thi = float(trained[0]), float(trained[1])
    slack = 1e-6 * max(1.0, thi - tlo)
    if lo >= tlo - slack and hi <= thi + slack:
        return False
    if tlo >= 0 and lo >= 0 and hi > thi and hi <= 255 * thi:
        integral = bool(np.all(x == np.round(x)))
        fix = f"divide by {16 if integral and hi <= 16 else 255}"
        if thi != 1:
            fix += f" and multiply by {thi:g}"
    else:
        fix = f"rescale them into [{tlo:g}, {thi:g}]"
    print(f"warning: {what} {path}: values in [{lo:g}, {hi:g}] but {source} [{tlo:g}, {thi:g}]: {fix}",
          file=sys.stderr)
    return True


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    check_output_path(path, "file")
    d = os.path.dirname(os.path.abspath(path)) or "."
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
