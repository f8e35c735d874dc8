""".safetensors files, read and written without the safetensors package (or PyTorch).

    bytes 0..8      N, the header's length, an unsigned 64-bit little-endian integer
    bytes 8..8+N    a JSON object {name: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}},
                    plus an optional "__metadata__": {str: str}
    bytes 8+N..     the data: tensor `name` is the raw little-endian bytes [b, e) of this part

Nothing in the file is executed: the header is JSON, the tensors raw bytes, and every offset and
length is checked against the file's size before anything is read.
"""
import json
import os

import numpy as np

from minivit import backend
from minivit.checkpoint import atomic_write
from minivit.errors import CheckpointError, MissingFile

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
          "BOOL": "?"}
NAMES = {np.dtype(code): name for name, code in DTYPES.items() if name != "BF16"}  # "<u2": U16
MAX_HEADER = 100_000_000  # the safetensors library's own limit: a larger "length" is corruption


def bfloat16_to_float32(bits):
    """bfloat16 is the top half of a float32 (sign, 8 exponent bits, 7 mantissa bits): shifting
    its 16 bits up by 16 gives the float32 with the same value.  uint16 (...) -> float32 (...)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _read_header(f, path):
    """The parsed JSON header of an open .safetensors file and where its data begins."""
    size = os.fstat(f.fileno()).st_size
    prefix = f.read(8)
    if len(prefix) < 8:
        raise CheckpointError(f"{path} is not a .safetensors file: {size} bytes, too short for "
                              "the 8-byte header length")
    length = int.from_bytes(prefix, "little")
    if length > min(size - 8, MAX_HEADER):
        raise CheckpointError(f"{path} is truncated or not a .safetensors file: the header "
                              f"length {length} runs past the end of the file ({size} bytes)")
    try:
        header = json.loads(f.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} has a corrupt .safetensors header ({error})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a corrupt .safetensors header (not a JSON object)")
    return header, 8 + length, size - 8 - length


def _check_entry(path, name, entry, data_size):
    """dtype, shape and byte range [begin, end) of one header entry, after checking that they
    make sense: a known dtype, offsets inside the data, and exactly dtype x shape bytes."""
    try:
        dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry "
                              f"{entry!r}") from None
    if dtype not in DTYPES:
        raise CheckpointError(f"{path}: tensor {name!r} has dtype {dtype!r}, which minivit cannot "
                              f"read (it reads {', '.join(DTYPES)})")
    if not all(isinstance(n, int) and n >= 0 for n in (*shape, begin, end)):
        raise CheckpointError(f"{path}: tensor {name!r} has a malformed shape {shape} or offsets "
                              f"{[begin, end]}")
    if not begin <= end <= data_size:
        raise CheckpointError(f"{path} is truncated or corrupt: tensor {name!r} needs bytes "
                              f"{begin}..{end} of the data, which has {data_size}")
    expected = np.dtype(DTYPES[dtype]).itemsize * int(np.prod(shape))
    if end - begin != expected:
        raise CheckpointError(f"{path} is corrupt: tensor {name!r} ({dtype}, shape {shape}) needs "
                              f"{expected} bytes but has {end - begin}")
    return dtype, shape, (begin, end)


def read_safetensors(path):
    """Read {name: NumPy array} from a .safetensors file, in the header's order.

    F64/F32/F16 and the integer types keep their dtype; BF16, which NumPy lacks, becomes float32
    (exactly: every bfloat16 is a float32). A truncated or corrupt file raises CheckpointError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFile(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        header, data_start, data_size = _read_header(f, path)
        entries = {name: _check_entry(path, name, entry, data_size)
                   for name, entry in header.items() if name != "__metadata__"}
        taken = sorted(span for _, _, span in entries.values() if span[0] < span[1])
        for (_, end), (begin, _) in zip(taken, taken[1:]):
            if begin < end:
                raise CheckpointError(f"{path} is corrupt: two tensors share bytes {begin}..{end}")
        arrays = {}
        for name, (dtype, shape, (begin, end)) in entries.items():
            array = np.empty(shape, DTYPES[dtype])
            f.seek(data_start + begin)
            if array.size and f.readinto(array.reshape(-1).view(np.uint8)) != end - begin:
                raise CheckpointError(f"{path} is truncated: tensor {name!r} is cut short")
            arrays[name] = bfloat16_to_float32(array) if dtype == "BF16" else array
    return arrays


def safetensors_metadata(path):
    """The optional "__metadata__" {str: str} of a .safetensors file ({} if it has none)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        header, _, _ = _read_header(f, path)
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path} has a corrupt .safetensors header (__metadata__ is not an "
                              "object)")
    return metadata


def write_safetensors(path, arrays, metadata=None):
    """Write {name: array} (NumPy or CuPy) to `path` as .safetensors, with optional string
    metadata. Written atomically (checkpoint.atomic_write)."""
    path = os.fspath(path)
    arrays = {name: np.asarray(backend.to_device(a, "cpu"), order="C")
              for name, a in arrays.items()}
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, array in arrays.items():
        if array.dtype.newbyteorder("<") not in NAMES:
            raise TypeError(f"tensor {name!r} has dtype {array.dtype}, which .safetensors "
                            "cannot store")
        header[name] = dict(dtype=NAMES[array.dtype.newbyteorder("<")], shape=list(array.shape),
                            data_offsets=[offset, offset + array.nbytes])
        offset += array.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # pad with spaces so the data starts 8-byte aligned

    def write(f):
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for array in arrays.values():
            f.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())

    atomic_write(path, write)
