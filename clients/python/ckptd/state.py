"""State dicts <-> the entries of one item.

Save: every tensor leaf of a nested state dict (torch tensor of a wire dtype, or numpy
array) becomes a tensor entry whose key is its path joined with ``/``
(``state/0/exp_avg``); the structure - containers and every non-tensor leaf, python
scalars, None, tuples, strings, OrderedDict metadata, custom objects - is pickled into
one object entry, :data:`STRUCTURE_KEY`, with each tensor replaced by a reference to its
entry (pickle's persistent ids, as ``torch.save`` does for storages). Loading unpickles
the structure and puts the loaded tensors back, so the state dict round-trips exactly,
including which leaves are the same tensor object.

An item without a structure entry (saved by another client, e.g. the TypeScript one)
loads as nested dicts built from the keys; object entries decode by their format
(``json``, ``pickle``, ``bytes``).

Unpickling runs code named by the checkpoint, as ``torch.load(weights_only=False)``
does: load only checkpoints your own jobs wrote.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ._compat import is_sharded_tensor
from .client import LoadedItems, LoadedObject, LoadedTensor, ObjectEntry, TensorEntry
from .errors import InvalidArgument
from .tensors import is_torch_tensor, is_wire_tensor, torch

#: Key of the object entry holding the pickled structure of a state dict.
STRUCTURE_KEY = "__ckptd_structure__"
#: Its format string.
STRUCTURE_FORMAT = "ckptd-structure+pickle"
_PID_TAG = "ckptd.entry"
_PICKLE_PROTOCOL = 4

MapLocation = Union[None, str, Any, Mapping, Callable]


class Shard:
    """This rank's shard of a global tensor, as a state dict leaf: ``tensor`` is the box
    of the global tensor (of shape ``global_shape``) that starts at ``offsets``.

    Saved, it is a tensor entry with the global shape and offsets, so a loader of any world
    size can ask the daemon for any box of the global tensor (see
    :meth:`ckptd.CkptdClient.load_into`); in a template for ``load_into`` it asks for its box.
    A plain load gives it back as saved. A ``ShardedTensor`` with one local shard is saved
    the same way (and loads back as a Shard of that local shard)."""

    def __init__(self, tensor: Any, global_shape: Any, offsets: Any):
        shape = tuple(int(d) for d in tensor.shape)
        self.tensor = tensor
        self.global_shape = tuple(int(d) for d in global_shape)
        self.offsets = tuple(int(d) for d in offsets)
        if not (len(self.global_shape) == len(self.offsets) == len(shape)):
            raise InvalidArgument(f"a Shard of shape {list(shape)} needs one global size and one offset per dimension, "
                                  f"got global_shape {list(self.global_shape)} and offsets {list(self.offsets)}")
        for d, (o, n, g) in enumerate(zip(self.offsets, shape, self.global_shape)):
            if o < 0 or o + n > g:
                raise InvalidArgument(f"a Shard of shape {list(shape)} at offsets {list(self.offsets)} does not fit in "
                                      f"global shape {list(self.global_shape)} (dimension {d})")

    def __reduce__(self):
        return _restore_shard, (self.tensor, self.global_shape, self.offsets)

    def __repr__(self) -> str:
        return (f"Shard(shape={list(self.tensor.shape)}, global_shape={list(self.global_shape)}, "
                f"offsets={list(self.offsets)})")


def _restore_shard(tensor: Any, global_shape: Tuple[int, ...], offsets: Tuple[int, ...]) -> Shard:
    """A Shard from a pickle, unchecked: it was checked when saved, and the tensor may be a
    stand-in for an entry that was not loaded."""
    shard = Shard.__new__(Shard)
    shard.tensor, shard.global_shape, shard.offsets = tensor, tuple(global_shape), tuple(offsets)
    return shard


def sharded_leaf(value: Any, path: str = "") -> Optional[Tuple[Any, Tuple[int, ...], Tuple[int, ...]]]:
    """(local tensor, global shape, offsets) of a Shard or a ShardedTensor with one local
    shard; None for anything else. A ShardedTensor with several local shards on one rank
    is refused: one item holds one shard per key."""
    if isinstance(value, Shard):
        return value.tensor, value.global_shape, value.offsets
    if is_sharded_tensor(value):
        shards = value.local_shards()
        if len(shards) != 1:
            raise InvalidArgument(f"{path or 'a ShardedTensor'}: holds {len(shards)} local shards on this rank; ckptd "
                                  "saves one shard per key and rank (use one shard per rank, or ckptd.dcp)")
        md = shards[0].metadata
        return shards[0].tensor, tuple(int(d) for d in value.metadata().size), tuple(int(d) for d in md.shard_offsets)
    return None


def _kind(value: Any) -> str:
    if is_torch_tensor(value):
        return "parameter" if torch is not None and isinstance(value, torch.nn.Parameter) else "torch"
    return "numpy"


class _KeyAssigner:
    def __init__(self):
        self.by_id: Dict[int, str] = {}
        self.used = {STRUCTURE_KEY}
        self.entries: List[Tuple[str, Any]] = []
        #: key -> (global shape, offsets) of the entries that are shards of a global tensor.
        self.sharding: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {}

    def add(self, value: Any, path: str) -> str:
        key = self.by_id.get(id(value))
        if key is not None:
            return key  # the same tensor object again: stored once, shared again on load
        key = path or "tensor"
        if key in self.used:
            n = 1
            while f"{key}#{n}" in self.used:
                n += 1
            key = f"{key}#{n}"
        self.used.add(key)
        self.by_id[id(value)] = key
        self.entries.append((key, value))
        return key

    def walk(self, obj: Any, path: str) -> None:
        shard = sharded_leaf(obj, path)
        if shard is not None:
            tensor, global_shape, offsets = shard
            if not is_wire_tensor(tensor):
                raise InvalidArgument(f"{path}: the shard is not a dense tensor of a supported dtype")
            if id(tensor) not in self.by_id:
                self.sharding[self.add(tensor, path)] = (global_shape, offsets)
        elif is_wire_tensor(obj):
            self.add(obj, path)
        elif isinstance(obj, Mapping):
            for k, v in obj.items():
                self.walk(v, f"{path}/{k}" if path else str(k))
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                self.walk(v, f"{path}/{i}" if path else str(i))


class _StructurePickler(pickle.Pickler):
    def __init__(self, file, keys: _KeyAssigner):
        super().__init__(file, protocol=_PICKLE_PROTOCOL)
        self._keys = keys

    def reducer_override(self, obj):
        # A ShardedTensor holds a process group: it is kept as the Shard of its local shard.
        if is_sharded_tensor(obj):
            tensor, global_shape, offsets = sharded_leaf(obj)
            return _restore_shard, (tensor, global_shape, offsets)
        return NotImplemented

    def persistent_id(self, obj):
        if is_sharded_tensor(obj):
            return None  # reducer_override keeps it as a Shard
        if is_wire_tensor(obj):
            # Tensors the walk did not reach (inside a custom object) get a key here.
            key = self._keys.by_id.get(id(obj)) or self._keys.add(obj, f"_/{len(self._keys.entries)}")
            requires_grad = bool(getattr(obj, "requires_grad", False))
            return (_PID_TAG, key, _kind(obj), requires_grad)
        return None


def flatten(state: Any, device: Union[None, str, Callable[[Any], Optional[str]]] = None) -> List[Union[TensorEntry, ObjectEntry]]:
    """The entries of a state dict: its tensors, then its pickled structure.

    ``device`` overrides the device recorded for every tensor (a string, or a callable
    ``tensor -> device or None``); by default each tensor's own device is recorded.
    Raises InvalidArgument when the structure cannot be pickled, before anything is sent.
    """
    keys = _KeyAssigner()
    keys.walk(state, "")
    buf = io.BytesIO()
    try:
        _StructurePickler(buf, keys).dump(state)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise InvalidArgument(f"the state dict cannot be pickled: {err}") from err
    entries: List[Union[TensorEntry, ObjectEntry]] = [ObjectEntry(STRUCTURE_KEY, buf.getvalue(), STRUCTURE_FORMAT)]
    for key, value in keys.entries:
        recorded = device(value) if callable(device) else device
        global_shape, offsets = keys.sharding.get(key, ((), ()))
        entries.append(TensorEntry(key, value, device=recorded, global_shape=global_shape, global_offsets=offsets))
    return entries


def request_map_location(map_location: MapLocation) -> Dict[str, str]:
    """The LoadRequest.map_location an explicit torch.load-style ``map_location`` implies."""
    if map_location is None or callable(map_location) and not isinstance(map_location, (str, Mapping)):
        return {}
    if isinstance(map_location, Mapping):
        return {str(k): str(v) for k, v in map_location.items()}
    return {"*": str(map_location)}  # a str or torch.device


def placement(map_location: MapLocation) -> Callable[[str, str, str, str], Optional[str]]:
    """Where to assemble each tensor: the daemon's target (which already reflects an
    explicit str/dict mapping), or the host when a callable decides afterwards."""
    if callable(map_location) and not isinstance(map_location, (str, Mapping)) and not _is_device(map_location):
        return lambda item, key, saved, target: None
    if isinstance(map_location, Mapping):
        explicit = {str(k): str(v) for k, v in map_location.items()}
        return lambda item, key, saved, target: explicit.get(saved, target)
    if map_location is not None:
        dev = str(map_location)
        return lambda item, key, saved, target: dev
    return lambda item, key, saved, target: target


def _is_device(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.device)


def _apply_callable(map_location: Callable, tensor: Any, saved_device: str, target: str) -> Any:
    """torch.load's callable map_location, storage-less: called with the CPU tensor and the
    saved location string; a tensor (or storage-like with .to) result is used, None keeps
    the daemon's hint."""
    result = map_location(tensor, saved_device)
    if result is None:
        return tensor.to(target) if target and target != "cpu" else tensor
    if is_torch_tensor(result):
        return result
    raise InvalidArgument(f"map_location callable returned {type(result).__name__}, expected a tensor or None")


def _finish_tensor(entry: LoadedTensor, map_location: MapLocation) -> Any:
    value = entry.value
    if (callable(map_location) and not isinstance(map_location, (str, Mapping)) and not _is_device(map_location)
            and is_torch_tensor(value)):
        return _apply_callable(map_location, value, entry.saved_device, entry.target_device)
    return value


class _StructureUnpickler(pickle.Unpickler):
    def __init__(self, file, tensors: Dict[str, Any]):
        super().__init__(file)
        self._tensors = tensors

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 4 and pid[0] == _PID_TAG):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, key, kind, requires_grad = pid
        if key not in self._tensors:
            raise pickle.UnpicklingError(f"the structure refers to tensor entry {key!r}, which the item does not have")
        value = self._tensors[key]
        if kind == "numpy":
            if is_torch_tensor(value):
                value = value.detach().cpu()
                if str(value.dtype) == "torch.bfloat16":
                    return value  # numpy has no bfloat16: keep the tensor
                return value.numpy()
            return value
        if not is_torch_tensor(value):
            return value  # a dtype this torch lacks: the numpy array
        if kind == "parameter":
            return torch.nn.Parameter(value, requires_grad=requires_grad)
        if requires_grad and value.is_floating_point():
            value.requires_grad_(True)
        return value


def unflatten(entries: Dict[str, Union[LoadedTensor, LoadedObject]], map_location: MapLocation = None) -> Any:
    """A state dict from the loaded entries of one item (see the module doc)."""
    tensors = {k: _finish_tensor(e, map_location) for k, e in entries.items() if isinstance(e, LoadedTensor)}
    structure = entries.get(STRUCTURE_KEY)
    if isinstance(structure, LoadedObject) and structure.format == STRUCTURE_FORMAT:
        return _StructureUnpickler(io.BytesIO(structure.data), tensors).load()
    out: Dict[str, Any] = {}
    for key, entry in entries.items():
        value = tensors[key] if isinstance(entry, LoadedTensor) else _decode_object(key, entry)
        node = out
        parts = key.split("/")
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out


def _decode_object(key: str, entry: LoadedObject) -> Any:
    fmt = entry.format
    if fmt == "json":
        return json.loads(entry.data.decode("utf-8"))
    if fmt in ("pickle", STRUCTURE_FORMAT):
        return pickle.loads(entry.data)
    return entry.data


def item_state(loaded: LoadedItems, item: str, map_location: MapLocation = None) -> Any:
    """The state dict of ``item`` in a loaded stream."""
    return unflatten(loaded.items[item], map_location)
