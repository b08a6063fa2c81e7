"""Read and write the safetensors format with the standard library and numpy.

Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian
unsigned header length N, then N bytes of JSON

    {"__metadata__": {"k": "v"}, "NAME": {"dtype": "F32", "shape": [2, 3],
     "data_offsets": [BEGIN, END]}, ...}

padded with spaces to a multiple of 8 (as the reference implementation does),
then the data section: each tensor's bytes, little-endian, row-major, at
[BEGIN, END) relative to the start of the data section, with no gaps.

Here tensors are written in sorted key order, and the header lists
`__metadata__` (string to string, optional) first and the tensors in that same
order. Supported dtypes: F32, F16, BF16 (written from float32 by rounding to
nearest even; read back as float32, since numpy has no bfloat16), F64, I64,
I32, I16, I8, U8, BOOL.

    from safetensors import save_file, load_file
    save_file({"w": np.ones((2, 3), np.float32)}, "m.safetensors", dtype="BF16")
    tensors = load_file("m.safetensors")          # {"w": float32 array}
    header, metadata = read_header("m.safetensors")
"""

import json
import struct

import numpy as np

# safetensors dtype name -> numpy little-endian dtype of its storage
_STORAGE = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# numpy dtype -> safetensors dtype name, for arrays written as they are
_FROM_NUMPY = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}

FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")

# a header longer than this is taken to be a corrupt file (the reference uses 100 MB)
MAX_HEADER = 100 * 1000 * 1000


class SafetensorsError(ValueError):
    pass


def f32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bit patterns, rounding to nearest even.

    NaNs stay (quiet) NaNs; values that round past the largest bfloat16 become
    infinities, as in IEEE rounding."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    rounded = np.where(nan, (u >> 16) | 0x40, rounded)
    return rounded.astype("<u2")


def bf16_bits_to_f32(bits):
    """uint16 bfloat16 bit patterns -> float32 array (exact)."""
    return (np.asarray(bits, dtype="<u2").astype("<u4") << 16).view("<f4")


def _encode(name, array, dtype):
    """(dtype name, shape, bytes) for one tensor."""
    a = np.asarray(array)
    if dtype is None or a.dtype.kind not in "f":
        dtype = _FROM_NUMPY.get(a.dtype)
        if dtype is None:
            raise SafetensorsError(f"{name}: unsupported numpy dtype {a.dtype}")
    if dtype == "BF16":
        data = f32_to_bf16_bits(a.astype(np.float32))
    elif dtype in _STORAGE:
        with np.errstate(over="ignore"):  # too large for F16: inf, as torch does
            data = np.ascontiguousarray(a, dtype=_STORAGE[dtype])
    else:
        raise SafetensorsError(f"{name}: unsupported dtype {dtype}")
    return dtype, list(a.shape), data.tobytes()


def serialize(tensors, metadata=None, dtype=None):
    """The bytes of a safetensors file holding `tensors` (name -> array-like).

    `dtype` ("F32", "F16", "BF16", "F64"), if given, is the dtype written for
    every floating-point tensor; integer and bool tensors keep their own.
    `metadata` is a dict of strings, stored as `__metadata__`."""
    if dtype is not None and dtype not in FLOAT_DTYPES:
        raise SafetensorsError(f"dtype must be one of {', '.join(FLOAT_DTYPES)}, not {dtype}")
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError("__metadata__ must map strings to strings")
        header["__metadata__"] = dict(metadata)
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise SafetensorsError("a tensor may not be named __metadata__")
        dt, shape, data = _encode(name, tensors[name], dtype)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save_file(tensors, path, metadata=None, dtype=None):
    """Write `tensors` (name -> array-like) to `path`; see serialize()."""
    blob = serialize(tensors, metadata=metadata, dtype=dtype)
    with open(path, "wb") as f:
        f.write(blob)


def _parse_header(buf, size):
    """(header dict without __metadata__, metadata or None, data start) of a file
    whose first bytes are `buf` and whose total size is `size`; validates it."""
    if len(buf) < 8:
        raise SafetensorsError(f"file too short for a header ({size} bytes)")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER or 8 + n > size:
        raise SafetensorsError(f"header length {n} exceeds the file ({size} bytes)")
    try:
        header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    data_size = size - 8 - n
    spans = []
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise SafetensorsError(f"{name}: malformed header entry {info!r}") from None
        if dtype not in _STORAGE:
            raise SafetensorsError(f"{name}: unsupported dtype {dtype}")
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError(f"{name}: bad shape {shape}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * _STORAGE[dtype].itemsize
        if not (0 <= begin <= end) or end - begin != nbytes:
            raise SafetensorsError(
                f"{name}: data_offsets [{begin}, {end}] hold {end - begin} bytes, "
                f"{dtype}{shape} needs {nbytes}")
        if end > data_size:
            raise SafetensorsError(
                f"{name}: data ends at {end}, past the data section ({data_size} bytes): truncated file")
        spans.append((begin, end, name))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise SafetensorsError(f"{name}: data starts at {begin}, expected {pos} (gap or overlap)")
        pos = end
    return header, metadata, 8 + n


def read_header(path):
    """(tensor entries, metadata or None) of a safetensors file, validated."""
    with open(path, "rb") as f:
        blob = f.read()
    header, metadata, _ = _parse_header(blob, len(blob))
    return header, metadata


def deserialize(blob, bf16_as_f32=True):
    """name -> numpy array from the bytes of a safetensors file (in header order).

    BF16 tensors come back as float32 (or as uint16 bit patterns with
    bf16_as_f32=False)."""
    header, _, start = _parse_header(blob, len(blob))
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        storage = _STORAGE[info["dtype"]]
        a = np.frombuffer(blob, dtype=storage, count=(end - begin) // storage.itemsize,
                          offset=start + begin).reshape(info["shape"])
        if info["dtype"] == "BF16" and bf16_as_f32:
            out[name] = bf16_bits_to_f32(a).astype(np.float32)
        else:
            out[name] = a.astype(storage.newbyteorder("="), copy=True)
    return out


def load_file(path, bf16_as_f32=True):
    """name -> numpy array of a safetensors file; see deserialize()."""
    with open(path, "rb") as f:
        return deserialize(f.read(), bf16_as_f32=bf16_as_f32)


def load_metadata(path):
    """The `__metadata__` dict of a safetensors file ({} if none)."""
    return read_header(path)[1] or {}
