"""Reading untrusted snapshot bytes: an ``.npz`` archive whose every entry is checked first.

Nothing is ever unpickled. Each array's dtype and shape are read from its ``.npy`` header and
checked before its data is loaded; header fields are checked for type and range. Any problem
is a `SnapshotError` that says what is wrong. Each part of a learner reads its own `Section`
(its header object and its arrays) with the checked accessors here; `consumer.core.snapshot`
writes the archive and ties the parts together.

>>> read_archive(b"PK\\x03\\x04 truncated")
Traceback (most recent call last):
...
consumer.core.snapshot_read.SnapshotError: not a snapshot: BadZipFile: File is not a zip file
>>> check_range("history", np.array([1, 2, 9]), 1, 5)
Traceback (most recent call last):
...
consumer.core.snapshot_read.SnapshotError: corrupt snapshot: history ids must lie in [1, 5)
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["Archive", "Section", "SnapshotError", "check_range", "checked_int", "read_archive"]


class SnapshotError(ValueError):
    """A snapshot that cannot be restored: corrupt, of another format version or model config."""


@contextlib.contextmanager
def foreign_errors(what: str) -> Iterator[None]:
    # zipfile, numpy.lib.format and json parse untrusted bytes here and can fail in many ways
    # (BadZipFile, EOFError, OSError, KeyError, ValueError, RecursionError, MemoryError...):
    # every one of them means the same thing to the caller.
    try:
        yield
    except SnapshotError:
        raise
    except Exception as exc:
        raise SnapshotError(f"{what}: {type(exc).__name__}: {exc}") from exc


class Archive:
    """The .npz entries, each checked against its expected dtype and shape before loading."""

    def __init__(self, data: bytes) -> None:
        with foreign_errors("not a snapshot"):
            npz = np.load(io.BytesIO(data), allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile) or npz.zip is None:
                raise SnapshotError("not a snapshot: a single .npy array, not an .npz archive")
            self.npz, self.zip = npz, npz.zip
            self.names = set(npz.files)
        self.read: set[str] = set()

    def array(self, name: str, dtype: type, shape: tuple[int | None, ...]) -> np.ndarray:
        """Entry `name`; None in `shape` accepts any length on that axis."""
        if name not in self.names:
            raise SnapshotError(f"corrupt snapshot: entry {name!r} is missing")
        with foreign_errors(f"corrupt snapshot: entry {name!r}"):
            with self.zip.open(f"{name}.npy") as stream:
                version = np.lib.format.read_magic(stream)
                read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                    version, np.lib.format.read_array_header_2_0
                )
                found_shape, _, found_dtype = read(stream)
            fits = len(found_shape) == len(shape) and all(
                want is None or want == got for want, got in zip(shape, found_shape, strict=True)
            )
            if found_dtype != np.dtype(dtype) or not fits:
                want = tuple("*" if n is None else n for n in shape)
                raise SnapshotError(
                    f"corrupt snapshot: entry {name!r} is {found_dtype} {tuple(found_shape)}, "
                    f"expected {np.dtype(dtype)} {want}"
                )
            self.read.add(name)
            return np.asarray(self.npz[name])

    def header(self) -> dict[str, Any]:
        raw = self.array("header", np.uint8, (None,))
        with foreign_errors("corrupt snapshot: header"):
            header = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(header, dict):
            raise SnapshotError("not a snapshot: the header is not a JSON object")
        return header

    def check_all_read(self) -> None:
        """Every entry was asked for: an archive with more is not one we wrote."""
        extra = sorted(self.names - self.read)
        if extra:
            raise SnapshotError(f"corrupt snapshot: unexpected entries {extra}")


def read_archive(data: bytes) -> Archive:
    return Archive(data)


class Section:
    """One part's share of a snapshot: its object in the header, its arrays named ``part.name``."""

    def __init__(self, archive: Archive, header: dict[str, Any], part: str) -> None:
        fields = header.get(part)
        if not isinstance(fields, dict):
            raise SnapshotError(f"corrupt snapshot: the header holds no {part!r} object")
        self.archive, self.fields, self.part = archive, fields, part

    def array(self, name: str, dtype: type, shape: tuple[int | None, ...]) -> np.ndarray:
        return self.archive.array(f"{self.part}.{name}", dtype, shape)

    def integer(self, name: str, low: int = 0, high: float = math.inf) -> int:
        return checked_int(self.fields, name, low, high, within=self.part)

    def flag(self, name: str) -> bool:
        value = self.fields.get(name)
        if type(value) is not bool:
            raise SnapshotError(f"corrupt snapshot: {self.part}.{name} must be a boolean, got {value!r}")
        return value

    def sequence(self, name: str, limit: int) -> list[Any]:
        value = self.fields.get(name)
        if not isinstance(value, list) or len(value) > limit:
            raise SnapshotError(f"corrupt snapshot: {self.part}.{name} must be a list of at most {limit}")
        return value

    def floats(self, name: str, limit: int) -> list[float]:
        values = self.sequence(name, limit)
        if not all(type(v) is float and math.isfinite(v) for v in values):
            raise SnapshotError(f"corrupt snapshot: {self.part}.{name} must hold finite floats")
        return values

    def error(self, what: str) -> SnapshotError:
        return SnapshotError(f"corrupt snapshot: {self.part}: {what}")


def check_range(name: str, values: np.ndarray, low: int, end: int) -> None:
    """Ids must lie in [low, end): an id past the vocabulary would index out of the model's tables."""
    if values.size and (values.min() < low or values.max() >= end):
        raise SnapshotError(f"corrupt snapshot: {name} ids must lie in [{low}, {end})")


def checked_int(
    data: dict[str, Any], name: str, low: int = 0, high: float = math.inf, within: str = ""
) -> int:
    """Header field `name` of `data` (inside object `within`), an integer in [low, high]."""
    value = data.get(name)
    if type(value) is not int or not low <= value <= high:  # bool is no integer here
        label = f"{within}.{name}" if within else name
        raise SnapshotError(f"corrupt snapshot: {label} must be an integer in [{low}, {high}], got {value!r}")
    return value
