"""Tensors on the wire: dtypes, and the bytes of a torch tensor or numpy array in chunks.

The wire carries a tensor as its raw little-endian bytes in row-major order. On save
the bytes are read from the tensor's own memory:

- a contiguous CPU tensor or numpy array is sent as views of its memory (via
  ``tensor.numpy()`` viewed as uint8; bfloat16 and other dtypes numpy lacks are first
  viewed as an integer type of the same width), so the only copies are the per-chunk
  ones that gRPC needs to frame a message;
- a non-contiguous tensor (a transpose, a strided slice) is made contiguous first, one
  copy of that tensor - only of that one, one at a time;
- a CUDA (or other accelerator) tensor is copied to host one chunk at a time, never whole.

On load each tensor is assembled in one buffer of its final size: a numpy buffer that
the torch tensor shares (CPU), or the device tensor itself, filled chunk by chunk.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ._compat import is_sharded_tensor
from ._proto import checkpoint_service_pb2 as pb
from .errors import InvalidArgument

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional for numpy-only users
    torch = None  # type: ignore[assignment]

if sys.byteorder != "little":  # pragma: no cover
    raise ImportError("ckptd: the wire format is little-endian; big-endian hosts are not supported")

#: dtype name (as in ``torch.<name>``) -> (wire enum, bytes per element)
DTYPES = {
    "float32": (pb.DTYPE_FLOAT32, 4),
    "float64": (pb.DTYPE_FLOAT64, 8),
    "float16": (pb.DTYPE_FLOAT16, 2),
    "bfloat16": (pb.DTYPE_BFLOAT16, 2),
    "int8": (pb.DTYPE_INT8, 1),
    "int16": (pb.DTYPE_INT16, 2),
    "int32": (pb.DTYPE_INT32, 4),
    "int64": (pb.DTYPE_INT64, 8),
    "uint8": (pb.DTYPE_UINT8, 1),
    "uint16": (pb.DTYPE_UINT16, 2),
    "uint32": (pb.DTYPE_UINT32, 4),
    "uint64": (pb.DTYPE_UINT64, 8),
    "bool": (pb.DTYPE_BOOL, 1),
    "complex64": (pb.DTYPE_COMPLEX64, 8),
    "complex128": (pb.DTYPE_COMPLEX128, 16),
    "float8_e4m3fn": (pb.DTYPE_FLOAT8_E4M3FN, 1),
    "float8_e5m2": (pb.DTYPE_FLOAT8_E5M2, 1),
}
_NAME_BY_WIRE = {wire: name for name, (wire, _) in DTYPES.items()}

# Element types numpy has no dtype for, read and written through an integer of the same width.
_NUMPY_STAND_IN = {"bfloat16": np.int16, "float8_e4m3fn": np.uint8, "float8_e5m2": np.uint8}


def dtype_name(wire_dtype: int) -> str:
    """The dtype name of a wire enum value; raises InvalidArgument for unknown ones."""
    try:
        return _NAME_BY_WIRE[wire_dtype]
    except KeyError:
        raise InvalidArgument(f"unknown dtype {wire_dtype}") from None


def element_size(name: str) -> int:
    return DTYPES[name][1]


def torch_dtype(name: str):
    """The torch dtype of a name, or None when this torch has none (e.g. uint32 before 2.3)."""
    if torch is None:
        return None
    dt = getattr(torch, name, None)
    return dt if isinstance(dt, torch.dtype) else None


def _torch_name(dt) -> Optional[str]:
    name = str(dt).replace("torch.", "")
    return name if name in DTYPES else None


def numpy_dtype(name: str):
    """The numpy dtype used to hold a dtype's bytes (a same-width integer for bfloat16, float8)."""
    stand_in = _NUMPY_STAND_IN.get(name)
    if stand_in is not None:
        try:  # ml_dtypes registers real numpy dtypes for these; use them when present.
            return np.dtype(name)
        except TypeError:
            return np.dtype(stand_in)
    return np.dtype(name).newbyteorder("<")


def _numpy_name(dt: np.dtype) -> Optional[str]:
    name = dt.name
    return name if name in DTYPES else None


def is_torch_tensor(value: Any) -> bool:
    return torch is not None and isinstance(value, torch.Tensor)


def is_wire_tensor(value: Any) -> bool:
    """True when ``value`` can be a tensor entry: a dense torch tensor or numpy array of a wire dtype.

    Anything else (sparse, quantized, meta tensors, object arrays) is pickled instead.
    """
    if is_torch_tensor(value):
        if is_sharded_tensor(value):
            return False  # a torch.Tensor subclass that holds local shards, not bytes of its own
        return (value.layout == torch.strided and not value.is_quantized and value.device.type != "meta"
                and _torch_name(value.dtype) is not None)
    if isinstance(value, np.ndarray):
        return not value.dtype.hasobject and _numpy_name(value.dtype) is not None
    return False


class TensorInfo:
    """What a tensor entry header says: dtype name, shape, device, byte size."""

    __slots__ = ("dtype", "shape", "device", "nbytes")

    def __init__(self, dtype: str, shape: Sequence[int], device: str):
        self.dtype = dtype
        self.shape = tuple(int(d) for d in shape)
        self.device = device
        n = element_size(dtype)
        for d in self.shape:
            n *= d
        self.nbytes = n


def tensor_info(value: Any, device: Optional[str] = None, dtype: Optional[str] = None) -> TensorInfo:
    """Describes a torch tensor or numpy array; ``device`` overrides the recorded device,
    ``dtype`` reinterprets the bytes as another dtype of the same element size."""
    if is_torch_tensor(value):
        name = _torch_name(value.dtype)
        own_device = str(value.device)
    elif isinstance(value, np.ndarray):
        name = _numpy_name(value.dtype)
        own_device = "cpu"
    else:
        raise InvalidArgument(f"not a tensor: {type(value).__name__}")
    if name is None:
        raise InvalidArgument(f"unsupported dtype {value.dtype}")
    if dtype is not None:
        if dtype not in DTYPES:
            raise InvalidArgument(f"unknown dtype {dtype!r}")
        if element_size(dtype) != element_size(name):
            raise InvalidArgument(f"cannot reinterpret {name} as {dtype}: element sizes differ")
        name = dtype
    return TensorInfo(name, tuple(value.shape), device or own_device)


def _host_bytes(value: Any) -> memoryview:
    """A flat uint8 view of a CPU tensor's or numpy array's bytes (contiguous first if needed)."""
    if is_torch_tensor(value):
        t = value.detach()
        if t.is_conj():
            t = t.resolve_conj()
        if t.is_neg():
            t = t.resolve_neg()
        if not t.is_contiguous():
            t = t.contiguous()  # one copy of this tensor, needed to stream it in row-major order
        name = _torch_name(t.dtype)
        stand_in = _NUMPY_STAND_IN.get(name)
        if stand_in is not None:
            t = t.view(getattr(torch, np.dtype(stand_in).name))
        arr = t.numpy()
    else:
        arr = value
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        arr = np.ascontiguousarray(arr)
    return memoryview(arr.reshape(-1).view(np.uint8))


def tensor_chunks(value: Any, chunk_bytes: int) -> Iterator[memoryview]:
    """The tensor's raw bytes as views of at most ``chunk_bytes`` each (device tensors: per-chunk host copies)."""
    if is_torch_tensor(value) and value.device.type != "cpu":
        t = value.detach()
        if not t.is_contiguous():
            t = t.contiguous()  # on the device: no host copy of the whole tensor
        flat = t.reshape(-1)
        per_chunk = max(1, chunk_bytes // flat.element_size())
        for start in range(0, flat.numel(), per_chunk):
            # One device-to-host copy per chunk: host memory stays bounded by the chunk size.
            yield _host_bytes(flat[start:start + per_chunk].to("cpu"))
        return
    data = _host_bytes(value)
    for start in range(0, len(data), chunk_bytes):
        yield data[start:start + chunk_bytes]


def tensor_spec(info: TensorInfo, global_shape: Sequence[int] = (), global_offsets: Sequence[int] = ()) -> pb.TensorSpec:
    return pb.TensorSpec(dtype=DTYPES[info.dtype][0], shape=list(info.shape), device=info.device,
                         global_shape=list(global_shape), global_offsets=list(global_offsets))


class TensorAssembler:
    """Receives one tensor's bytes chunk by chunk into a buffer of its final size.

    ``device`` None or "cpu" fills a numpy buffer (the torch tensor shares it); another
    device fills a tensor allocated there, through one reusable host staging buffer.
    """

    def __init__(self, info: TensorInfo, device: Optional[str], staging: "Optional[_Staging]" = None):
        self.info = info
        self.filled = 0
        self.device = device if device and device != "cpu" else None
        if self.device is None:
            self._host = np.empty(info.nbytes, dtype=np.uint8)
        else:
            if torch is None:
                raise InvalidArgument(f"cannot place a tensor on {device} without torch")
            self._dev = torch.empty(info.nbytes, dtype=torch.uint8, device=self.device)
            self._staging = staging or _Staging()

    def add(self, data: bytes) -> None:
        n = len(data)
        if self.filled + n > self.info.nbytes:
            raise ValueError("more bytes than announced")
        src = np.frombuffer(data, dtype=np.uint8)
        if self.device is None:
            self._host[self.filled:self.filled + n] = src
        else:
            stage = self._staging.get(n)
            stage.numpy()[:n] = src
            self._dev[self.filled:self.filled + n].copy_(stage[:n])
        self.filled += n

    @property
    def complete(self) -> bool:
        return self.filled == self.info.nbytes

    def torch(self):
        """The tensor, on its device (torch required)."""
        dt = torch_dtype(self.info.dtype)
        if dt is None:
            raise InvalidArgument(f"this torch ({torch.__version__ if torch else 'none'}) has no dtype {self.info.dtype}")
        raw = torch.from_numpy(self._host) if self.device is None else self._dev
        if self.info.nbytes == 0:
            return torch.empty(self.info.shape, dtype=dt, device=raw.device)
        return raw.view(dt).reshape(self.info.shape)

    def numpy(self) -> np.ndarray:
        """The array (on the host; bfloat16 and float8 without ml_dtypes as same-width integers)."""
        host = self._host if self.device is None else self._dev.cpu().numpy()
        return host.view(numpy_dtype(self.info.dtype)).reshape(self.info.shape)


class MappedTensor(TensorAssembler):
    """A tensor whose bytes the daemon writes in place: a view of ``length`` bytes at
    ``offset`` of a LoadShared destination mapping (host memory). Nothing is copied: each
    placed slice is only checked to be the next one of the tensor's region."""

    def __init__(self, info: TensorInfo, mapping, offset: int):
        self.info = info
        self.filled = 0
        self.device = None
        self.offset = offset
        if info.nbytes == 0:
            self._host = np.empty(0, dtype=np.uint8)
        else:
            self._host = np.frombuffer(mapping, dtype=np.uint8, count=info.nbytes, offset=offset)

    def add(self, data: bytes) -> None:
        raise ValueError("the bytes of a mapped tensor are placed, not added")

    def place(self, offset: int, length: int) -> None:
        """The daemon wrote ``length`` bytes at ``offset`` of the mapping: the tensor's next ones."""
        if offset != self.offset + self.filled or self.filled + length > self.info.nbytes:
            raise ValueError(f"a slice [{offset}, +{length}) that is not the next of the tensor's "
                             f"[{self.offset}, +{self.info.nbytes}) after {self.filled} bytes")
        self.filled += length


class _Staging:
    """A reusable host buffer for host-to-device copies (pinned when CUDA is available)."""

    def __init__(self):
        self._buf = None

    def get(self, n: int):
        if self._buf is None or self._buf.numel() < n:
            buf = torch.empty(max(n, 4 << 20), dtype=torch.uint8)
            if torch.cuda.is_available():
                buf = buf.pin_memory()
            self._buf = buf
        return self._buf


def value_dtype_name(value: Any) -> Optional[str]:
    """The wire dtype name of a torch tensor or numpy array, or None."""
    if is_torch_tensor(value):
        return _torch_name(value.dtype)
    if isinstance(value, np.ndarray):
        return _numpy_name(value.dtype) or {np.dtype(v).name: k for k, v in _NUMPY_STAND_IN.items()}.get(value.dtype.name)
    return None


def _writable_bytes(value: Any) -> Optional[np.ndarray]:
    """A flat uint8 numpy view of a contiguous host tensor's or array's memory, or None
    when its bytes cannot be written in place (another device, not contiguous)."""
    if is_torch_tensor(value):
        if value.device.type != "cpu" or not value.is_contiguous() or value.is_conj() or value.is_neg():
            return None
        t = value.detach()
        stand_in = _NUMPY_STAND_IN.get(_torch_name(t.dtype) or "")
        if stand_in is not None:
            t = t.view(getattr(torch, np.dtype(stand_in).name))
        return t.numpy().reshape(-1).view(np.uint8)
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous or not value.flags.writeable or not value.dtype.isnative:
            return None
        return value.reshape(-1).view(np.uint8)
    return None


class TensorFiller:
    """Receives one tensor's bytes into a destination the caller owns (a torch tensor on
    any device, or a numpy array) of the same dtype and shape: straight into its memory
    when it is a contiguous host tensor, else through a host buffer copied in at
    :meth:`done` (e.g. a narrowed view, or a CUDA tensor)."""

    def __init__(self, info: TensorInfo, dest: Any, where: str = "", staging: "Optional[_Staging]" = None):
        name = value_dtype_name(dest)
        if name is None:
            raise InvalidArgument(f"{where}: the destination is not a tensor of a supported dtype: {type(dest).__name__}")
        if name != info.dtype:
            raise InvalidArgument(f"{where}: the checkpoint holds {info.dtype}, the destination is {name}: "
                                  f"give a {info.dtype} tensor (or convert after loading)")
        if tuple(dest.shape) != info.shape:
            raise InvalidArgument(f"{where}: the checkpoint streams shape {list(info.shape)}, the destination has "
                                  f"shape {list(dest.shape)}")
        self.info = info
        self.dest = dest
        self.filled = 0
        self._direct = _writable_bytes(dest)
        self._host = self._direct if self._direct is not None else np.empty(info.nbytes, dtype=np.uint8)

    def add(self, data: bytes) -> None:
        n = len(data)
        if self.filled + n > self.info.nbytes:
            raise ValueError("more bytes than announced")
        self._host[self.filled:self.filled + n] = np.frombuffer(data, dtype=np.uint8)
        self.filled += n

    @property
    def complete(self) -> bool:
        return self.filled == self.info.nbytes

    def done(self) -> None:
        """Copies a buffered tensor into the destination (nothing to do when written in place)."""
        if self._direct is not None or self._host is None:
            return
        host, self._host = self._host, None
        arr = host.view(numpy_dtype(self.info.dtype)).reshape(self.info.shape)
        if is_torch_tensor(self.dest):
            src = torch.from_numpy(host)
            src = src.view(torch_dtype(self.info.dtype)).reshape(self.info.shape) if self.info.nbytes else \
                torch.empty(self.info.shape, dtype=self.dest.dtype)
            with torch.no_grad():
                self.dest.copy_(src)
        else:
            np.copyto(self.dest, arr)
