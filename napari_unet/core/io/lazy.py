"""A channels-first view of an image that stays on disk: regions are read only when asked for."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserInputError


class ChannelsFirstView:
    """``(C, *spatial)`` view of an array-like (numpy, zarr, dask) without reading it.

    ``channel_axis`` names the channel axis of ``array`` (None: one channel); ``drop_axes`` are
    singleton axes (e.g. a length-1 time axis of an OME-Zarr image) to leave out. Indexing with
    a tuple of slices, ``view[(c_slice, *spatial_slices)]``, reads just that region into numpy.
    The view pickles with its array, so dask workers can read their own regions.
    """

    def __init__(self, array: Any, channel_axis: int | None = None, drop_axes: tuple[int, ...] = ()) -> None:
        if np.dtype(array.dtype).kind not in "biuf":
            raise UserInputError(f"image dtype {array.dtype} is not numeric: convert it to an integer or float image")
        ndim = len(array.shape)
        if channel_axis is not None:
            if not -ndim <= channel_axis < ndim:
                raise UserInputError(f"channel axis {channel_axis} is out of range for an image of shape {array.shape}")
            channel_axis %= ndim
        if any(array.shape[a] != 1 for a in drop_axes) or channel_axis in drop_axes:
            raise UserInputError(f"only singleton non-channel axes can be dropped, got {drop_axes} for {array.shape}")
        self.array = array
        self.channel_axis = channel_axis
        self.drop_axes = tuple(a % ndim for a in drop_axes)
        self._spatial_axes = [a for a in range(ndim) if a != channel_axis and a not in self.drop_axes]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        channels = 1 if self.channel_axis is None else self.array.shape[self.channel_axis]
        return (channels, *(self.array.shape[a] for a in self._spatial_axes))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        """Read ``(channels, *spatial)`` slices into a ``(C', *region)`` numpy array."""
        if len(key) != self.ndim or not all(isinstance(k, slice) for k in key):
            raise IndexError(f"index a ChannelsFirstView with {self.ndim} slices, got {key!r}")
        source: list[Any] = [0] * len(self.array.shape)
        for axis, spatial_slice in zip(self._spatial_axes, key[1:]):
            source[axis] = spatial_slice
        if self.channel_axis is not None:
            source[self.channel_axis] = key[0]
        region = self._read(tuple(source))
        if self.channel_axis is None:
            return region[None][key[0]]
        channel_position = sum(1 for a in range(self.channel_axis) if a not in self.drop_axes)
        return np.moveaxis(region, channel_position, 0)

    def _read(self, source: tuple) -> np.ndarray:
        """``array[source]`` in memory; a damaged or unreadable chunk is a one-line :class:`UserInputError`."""
        try:
            region = self.array[source]
            if hasattr(region, "compute"):  # dask: read here, in this thread or worker
                region = region.compute(scheduler="synchronous")
            return np.asarray(region)
        except (UserInputError, MemoryError):
            raise
        except Exception as error:  # zarr, codecs and file systems raise many types for damaged data
            where = str(getattr(self.array, "store_path", "the image")).removeprefix("file://")
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
            raise UserInputError(
                f"cannot read {where} (a damaged or unreadable chunk: {reason}); restore the file or export it again"
            ) from None

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[(slice(None),) * self.ndim]
        return whole if dtype is None else whole.astype(dtype)
