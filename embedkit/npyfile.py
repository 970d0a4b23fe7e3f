"""NPY and NPZ files: memory-mapped, size-checked against their header, in native C order."""

from __future__ import annotations

import io
import os

import numpy as np

from embedkit.choices import DEFAULT_BUDGET_MIB
from embedkit.errors import InputError
from embedkit.formats import NPY_MAGIC


def load_npy(source_or_bytes: str | bytes, source: str, expected: str = "a float matrix") -> np.ndarray:
    """An NPY array: memory-mapped from a path, in native byte order and C order.

    The header's shape is checked against the file size first (a truncated file is an
    :class:`InputError` naming it). Big-endian or Fortran-ordered data is converted in
    blocks (:func:`native_c_order`)."""
    if not isinstance(source_or_bytes, bytes):
        check_npy_size(source_or_bytes, source)
    try:
        if isinstance(source_or_bytes, bytes):
            array = np.load(io.BytesIO(source_or_bytes), allow_pickle=False)
        else:
            array = np.load(source_or_bytes, mmap_mode="r", allow_pickle=False)
    except InputError:
        raise
    except ValueError as exc:
        text = str(exc)
        if "allow_pickle" in text or "Object arrays" in text or "Python objects" in text:
            raise InputError(f"{source}: holds a pickled object array; expected {expected}") from None
        raise InputError(f"{source}: not a valid NPY file ({text.splitlines()[0]})") from None
    except Exception as exc:  # numpy's header parser fails in many ways on untrusted bytes
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: not a valid NPY file ({detail})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"{source}: not a single NPY array")
    return native_c_order(array)


def check_npy_size(path: str, source: str) -> None:
    """Refuse an NPY file whose header promises more data than the file holds."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = header(handle)
            offset = handle.tell()
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
    except Exception:
        return  # np.load words the header problem
    if dtype.hasobject:
        return
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size - offset < needed:
        shown = "x".join(str(n) for n in shape) or "scalar"
        raise InputError(
            f"{source}: not a valid NPY file: its header says {shown} {dtype.name} ({needed:,} bytes of data) "
            f"but the file holds {max(size - offset, 0):,} bytes after the header (truncated?)"
        )


def native_c_order(array: np.ndarray, *, budget_mib: float = DEFAULT_BUDGET_MIB) -> np.ndarray:
    """``array`` in native byte order and C order; unchanged when it already is.

    A memory-mapped array is converted block by block into an unnamed temporary file
    that is memory-mapped in turn, so a big-endian or Fortran-ordered file costs disk,
    not memory; an in-memory array is converted in memory."""
    native = array.dtype.newbyteorder("=")
    if (native == array.dtype and (array.ndim < 2 or array.flags.c_contiguous)) or array.ndim > 2 \
            or array.dtype.hasobject or array.dtype.fields is not None:
        return array  # already native, or a shape/dtype the validation refuses anyway
    if not isinstance(array, np.memmap) or array.ndim != 2:
        return np.ascontiguousarray(array, dtype=native)
    import tempfile

    rows, dim = array.shape
    handle = tempfile.TemporaryFile(prefix="embedkit-native-")
    with handle:
        out = np.memmap(handle, dtype=native, mode="w+", shape=(rows, dim))
    fortran = not array.flags.c_contiguous
    count = dim if fortran else rows
    other = rows if fortran else dim
    step = max(1, int(budget_mib * 2**20) // max(1, other * native.itemsize))
    for start in range(0, count, step):
        stop = min(count, start + step)
        if fortran:
            out[:, start:stop] = array[:, start:stop]
        else:
            out[start:stop] = array[start:stop]
    out.flush()
    return out


def load_npz(source_or_bytes: str | bytes, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    target = io.BytesIO(source_or_bytes) if isinstance(source_or_bytes, bytes) else source_or_bytes
    try:
        with np.load(target, allow_pickle=False) as archive:
            if "embeddings" not in archive.files:
                raise InputError(
                    f"{source}: NPZ archive has no 'embeddings' array (has: {', '.join(archive.files) or 'nothing'})"
                )
            embeddings = _npz_member(archive, "embeddings", source)
            labels = _npz_member(archive, "labels", source) if "labels" in archive.files else None
    except InputError:
        raise
    except Exception as exc:  # zipfile/np errors come in many types; all mean "unreadable"
        raise InputError(f"{source}: not a readable NPZ archive ({exc})") from None
    return native_c_order(embeddings), labels if labels is None else native_c_order(labels)


def _npz_member(archive: "np.lib.npyio.NpzFile", name: str, source: str) -> np.ndarray:
    """One member of an NPZ archive, which must itself be an NPY array."""
    import zipfile

    member_name = f"{name}.npy" if f"{name}.npy" in archive.zip.namelist() else name
    with archive.zip.open(member_name) as member:
        head = member.read(len(NPY_MAGIC))
    if head != NPY_MAGIC:
        raise InputError(f"{source}: NPZ member '{name}' is not an NPY array (starts with {head!r})")
    try:
        value = archive[name]
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: NPZ member '{name}' is not a valid NPY array ({detail})") from None
    if not isinstance(value, np.ndarray):
        raise InputError(f"{source}: NPZ member '{name}' is not an array")
    return value
