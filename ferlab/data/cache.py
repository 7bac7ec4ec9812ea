"""Decoded-uint8 image cache: every file is decoded at most once per process.

The cache is one ``(N, 3, S, S)`` uint8 tensor plus a "filled" mask. It is filled
lazily (``ensure``) or all at once (``preload``, threaded, with a progress bar) and
can be moved to a GPU (``to(device)``) when it fits, so that batches never leave the
device.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..progress import progress_bar


class ImageCache:
    """The decoded images of a dataset: ``images`` (N, channels, size, size) uint8 and a ``filled``
    (N,) bool mask of the rows decoded so far.

    Args:
        n: Number of images N.
        size: Side S of the square images.
        decode: ``decode(i)`` returns image ``i`` as a uint8 (size, size, channels) array.
        channels: Channels per image.
    """

    def __init__(self, n: int, size: int, decode: Callable[[int], np.ndarray], channels: int = 3):
        """``decode(i)`` returns image ``i`` as a uint8 ``(size, size, channels)`` array."""
        self.decode = decode
        self.images = torch.zeros((n, channels, size, size), dtype=torch.uint8)
        self.filled = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes the image tensor takes (N * channels * S * S)."""
        return self.images.numel()

    @property
    def device(self) -> torch.device:
        """Where the image tensor lives."""
        return self.images.device

    def _fill(self, idx: np.ndarray, threads: int, progress: bool, desc: str) -> None:
        def work(i: int) -> tuple[int, np.ndarray]:
            return i, self.decode(int(i))

        bar = progress_bar(total=len(idx), desc=desc, disable=not progress, unit="img", leave=False)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for i, arr in pool.map(work, idx):
                self.images[i] = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(self.images.device)
                self.filled[i] = True
                bar.update(1)
        bar.close()

    def ensure(self, indices: np.ndarray, threads: int = 4) -> None:
        """Decode the rows of ``indices`` (int array) not decoded yet."""
        missing = indices[~self.filled[indices]]
        if len(missing):
            self._fill(np.unique(missing), threads, progress=False, desc="decode")

    def preload(self, threads: int = 4, progress: bool = True, desc: str = "decoding images") -> None:
        """Decode every row not decoded yet with ``threads`` threads (a progress bar ``desc``)."""
        missing = np.flatnonzero(~self.filled)
        if len(missing):
            self._fill(missing, threads, progress, desc)

    def get(self, indices: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The images of ``indices`` (B,), decoded first where needed: (B, channels, S, S) uint8 on
        :attr:`device`."""
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64)
        self.ensure(idx)
        return self.images[torch.as_tensor(idx, device=self.images.device)]

    def to(self, device: torch.device | str) -> ImageCache:
        """Move the (fully decoded) cache to ``device``; e.g. a GPU-resident cache."""
        self.preload()
        self.images = self.images.to(device)
        return self

    def share_memory_(self) -> ImageCache:
        """Move the image tensor to shared memory (worker processes see it without a copy); returns ``self``."""
        self.images.share_memory_()
        return self
