"""IDX files, the format of MNIST and Fashion-MNIST, read with numpy and checked before use.

An IDX file is a 4-byte big-endian magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order. Images are uint8 with
3 dimensions (count, rows, cols: magic 2051) and labels uint8 with 1 dimension (count: magic 2049).
A file may be gzip-compressed or not, whatever its name: the content decides.

Anything malformed raises `DataError` naming the file and what is wrong with it.
"""

import gzip
import zlib

import numpy as np

from tfprune.data.base import DataError

IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension (count)
_KIND = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path):
    """The (gunzipped, when it is gzip data) content of a file; unreadable data is a `DataError`."""
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == _GZIP_MAGIC
        opener = gzip.open if compressed else open
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"Cannot read IDX file {path!r}: {e}. The file is corrupt or truncated: "
                        f"download or install it again.") from e


def read_idx(path, magic, item_shape):
    """The uint8 array stored in an IDX file, checked against what the caller expects.

    Args:
        path: the file, gzipped or not.
        magic: `IMAGES_MAGIC` or `LABELS_MAGIC`.
        item_shape: the dimensions after the first (count) one, e.g. (28, 28) for images, () for labels.

    Returns:
        A read-only uint8 array of shape (count, *item_shape).
    """
    data = read_bytes(path)
    kind = _KIND.get(magic, f"magic {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file {path!r} is truncated: {len(data)} bytes, less than the {header}-byte "
                        f"header of an IDX {kind} file.")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"IDX file {path!r} has magic number {found}, expected {magic} (IDX {kind}): it is "
                        f"not an IDX {kind} file (swapped file names, or a corrupt download).")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if dims[1:] != tuple(item_shape):
        raise DataError(f"IDX file {path!r} holds {kind} of shape {dims[1:]}, expected {tuple(item_shape)}.")
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise DataError(f"IDX file {path!r} has {len(data) - header} bytes of data but its header "
                        f"{dims} needs {expected}: the file is truncated or corrupt.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)
