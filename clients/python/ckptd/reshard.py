"""Loading a checkpoint into a template of this rank's tensors, in any world size.

A template is a (nested) state dict shaped like the one saved, whose tensors say what this
rank wants, as torch.distributed.checkpoint's ``load_state_dict`` takes it:

- a plain tensor: the whole global tensor (or the unsharded saved entry);
- a :class:`ckptd.Shard` (tensor, global shape, offsets): that box of the global tensor;
- a ``ShardedTensor``: the box of each of its local shards.

:func:`load_into` asks the daemon for every box in one Load (the daemon assembles each from
the shards every saved rank stored) and copies the bytes straight into the template's
tensors, in place, checking dtype and shape. Non-tensor leaves of the template are
replaced by the saved values (from the lowest saved rank). A tensor's key is its path in
the state dict joined with ``/``, as :func:`ckptd.flatten` names it.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ._compat import is_sharded_tensor
from .client import CkptdClient, LoadedObject, TensorBox
from .errors import CheckpointNotFound, InvalidArgument
from .state import STRUCTURE_FORMAT, STRUCTURE_KEY, Shard, _decode_object
from .tensors import dtype_name, is_wire_tensor, value_dtype_name

__all__ = ["load_into", "SavedEntry", "saved_entries"]


@dataclass
class SavedEntry:
    """What a committed checkpoint holds under one key of an item, over all saved ranks."""

    key: str
    kind: str  # "tensor" or "object"
    dtype: str = ""
    #: The global tensor's shape: the saved global_shape of a sharded tensor, else its shape.
    global_shape: Tuple[int, ...] = ()
    sharded: bool = False
    ranks: Tuple[int, ...] = ()


def saved_entries(ckpt: Any, item: str) -> Dict[str, SavedEntry]:
    """key -> :class:`SavedEntry` of ``item`` in a checkpoint's full view (every rank's entries)."""
    out: Dict[str, SavedEntry] = {}
    for rank in ckpt.ranks:
        for it in rank.items:
            if it.name != item:
                continue
            for e in it.entries:
                kind = e.WhichOneof("kind")
                prev = out.get(e.key)
                if kind == "tensor":
                    spec = e.tensor
                    sharded = len(spec.global_shape) > 0
                    entry = SavedEntry(e.key, "tensor", dtype_name(spec.dtype),
                                       tuple(spec.global_shape) if sharded else tuple(spec.shape), sharded)
                else:
                    entry = SavedEntry(e.key, "object")
                if prev is None:
                    entry.ranks = (rank.rank,)
                    out[e.key] = entry
                else:
                    prev.ranks = prev.ranks + (rank.rank,)
    return out


class _Wanted:
    """One box the template asks for: where it goes and what it must be."""

    __slots__ = ("path", "dest", "offsets", "lengths")

    def __init__(self, path: str, dest: Any, offsets: Tuple[int, ...], lengths: Tuple[int, ...]):
        self.path = path
        self.dest = dest
        self.offsets = offsets
        self.lengths = lengths


def _tensor_leaf(value: Any) -> bool:
    return is_wire_tensor(value) or isinstance(value, Shard) or is_sharded_tensor(value)


def _holds_tensors(node: Any) -> bool:
    if _tensor_leaf(node):
        return True
    if isinstance(node, Mapping):
        return any(_holds_tensors(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_holds_tensors(v) for v in node)
    return False


def _walk(node: Any, path: str, wanted: List[_Wanted], objects: List[str], seen: set) -> None:
    """Collects the template's tensor boxes and the paths of its non-tensor leaves."""
    if isinstance(node, Shard):
        if id(node.tensor) not in seen:
            seen.add(id(node.tensor))
            wanted.append(_Wanted(path, node.tensor, node.offsets, tuple(int(d) for d in node.tensor.shape)))
    elif is_sharded_tensor(node):
        for shard in node.local_shards():
            md = shard.metadata
            wanted.append(_Wanted(path, shard.tensor, tuple(int(d) for d in md.shard_offsets),
                                  tuple(int(d) for d in md.shard_sizes)))
    elif is_wire_tensor(node):
        if id(node) not in seen:  # the same tensor twice was saved once, under its first path
            seen.add(id(node))
            wanted.append(_Wanted(path, node, (0,) * len(node.shape), tuple(int(d) for d in node.shape)))
    elif isinstance(node, Mapping):
        for k, v in node.items():
            _walk(v, f"{path}/{k}" if path else str(k), wanted, objects, seen)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _walk(v, f"{path}/{i}" if path else str(i), wanted, objects, seen)
    else:
        objects.append(path)


def _global_shape_of(node: Any) -> Optional[Tuple[int, ...]]:
    if isinstance(node, Shard):
        return node.global_shape
    if is_sharded_tensor(node):
        return tuple(int(d) for d in node.metadata().size)
    return None


def _check(w: _Wanted, saved: Dict[str, SavedEntry], where: str, template_global: Optional[Tuple[int, ...]]) -> None:
    entry = saved.get(w.path)
    if entry is None:
        tensors = sorted(k for k, e in saved.items() if e.kind == "tensor")
        raise CheckpointNotFound(f"{where} has no entry {w.path!r} for the template's tensor (its tensor keys: "
                                 f"{tensors[:20]}{' ...' if len(tensors) > 20 else ''})")
    if entry.kind != "tensor":
        raise InvalidArgument(f"{where}: entry {w.path!r} is an object, the template has a tensor there")
    name = value_dtype_name(w.dest)
    if name != entry.dtype:
        raise InvalidArgument(f"{where}: entry {w.path!r} is {entry.dtype}, the template's tensor is {name}: give a "
                              f"{entry.dtype} tensor")
    global_shape = template_global if template_global is not None else tuple(int(d) for d in w.dest.shape)
    if tuple(global_shape) != entry.global_shape:
        what = "the template's global shape" if template_global is not None else "the template's (whole) tensor"
        raise InvalidArgument(f"{where}: entry {w.path!r} is a global tensor of shape {list(entry.global_shape)}, "
                              f"{what} has shape {list(global_shape)}"
                              + ("" if template_global is not None else
                                 "; for a part of it give a ckptd.Shard(tensor, global_shape, offsets)"))


class _Placeholder:
    """A tensor of the saved structure that the template did not ask for."""

    def __init__(self, key: str):
        self.key = key


class _SkeletonUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "ckptd.entry":
            return _Placeholder(pid[1])
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")


def _is_placeholder(v: Any) -> bool:
    return isinstance(v, _Placeholder) or isinstance(v, Shard) and isinstance(v.tensor, _Placeholder)


def _placeholder_in(value: Any, seen: Optional[set] = None) -> Optional[str]:
    """The key of a saved tensor the template did not ask for, somewhere inside ``value``."""
    if isinstance(value, _Placeholder):
        return value.key
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, (str, bytes, int, float, bool, type(None))):
        return None
    seen.add(id(value))
    if isinstance(value, Mapping):
        children = list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = list(value)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = list(vars(value).values())
    else:
        return None
    for child in children:
        key = _placeholder_in(child, seen)
        if key is not None:
            return key
    return None


def _merge(template: Any, saved: Any, path: str, where: str) -> None:
    """Replaces the template's non-tensor values by the saved ones, in place."""
    if isinstance(template, MutableMapping):
        if not isinstance(saved, Mapping):
            raise InvalidArgument(f"{where}: {path or 'the state dict'} is a {type(saved).__name__} in the checkpoint, "
                                  "a mapping in the template")
        keys = list(template.keys())
    elif isinstance(template, list):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(template):
            raise InvalidArgument(f"{where}: {path} differs in the checkpoint ({type(saved).__name__} of "
                                  f"{len(saved) if hasattr(saved, '__len__') else '?'}) and the template (list of "
                                  f"{len(template)})")
        keys = list(range(len(template)))
    else:
        return  # a tuple holding tensors: its tensors were filled, its other values cannot be replaced
    for k in keys:
        sub = f"{path}/{k}" if path else str(k)
        value = template[k]
        if _tensor_leaf(value):
            continue
        try:
            saved_value = saved[k]
        except (KeyError, IndexError, TypeError):
            raise CheckpointNotFound(f"{where} has no value {sub!r} for the template's") from None
        if _holds_tensors(value):
            _merge(value, saved_value, sub, where)
            continue
        if _is_placeholder(saved_value):
            raise InvalidArgument(f"{where}: {sub!r} is a tensor in the checkpoint, the template has a "
                                  f"{type(value).__name__} there: give a tensor")
        inner = _placeholder_in(saved_value)
        if inner is not None:
            raise InvalidArgument(f"{where}: the saved value of {sub!r} holds tensor entry {inner!r}, which the "
                                  f"template's {type(value).__name__} there does not ask for: put the tensors in the "
                                  "template (plain tensors, ckptd.Shard or ShardedTensor leaves)")
        template[k] = saved_value


def _set_path(template: Any, path: str, value: Any) -> None:
    node = template
    parts = path.split("/")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif isinstance(node, MutableMapping):
        node[last] = value


def load_into(client: CkptdClient, job: str, checkpoint_id: str, template: Any, *, item: str, rank: int = 0,
              world_size: Optional[int] = None, local_rank: int = 0, timeout: Optional[float] = None) -> Any:
    """Fills ``template`` (a mapping) in place from ``item`` of a committed checkpoint, in
    one Load, whatever world size saved it; returns ``template``. See the module's doc."""
    if not isinstance(template, MutableMapping):
        raise InvalidArgument(f"load_into: the template must be a mutable mapping (a state dict), got "
                              f"{type(template).__name__}")
    ckpt = client.get_checkpoint(job, checkpoint_id, full=True, timeout=timeout)
    where = f"item {item} of checkpoint {job}/{ckpt.checkpoint_id}"
    saved = saved_entries(ckpt, item)
    if not saved:
        items = sorted({i.name for r in ckpt.ranks for i in r.items})
        raise CheckpointNotFound(f"checkpoint {job}/{ckpt.checkpoint_id} has no item {item} (items: {items})")
    wanted: List[_Wanted] = []
    objects: List[str] = []
    _walk(template, "", wanted, objects, set())
    by_path: Dict[str, Any] = {}
    _index(template, "", by_path)
    for w in wanted:
        _check(w, saved, where, _global_shape_of(by_path.get(w.path)))
    boxes = [TensorBox(item, w.path, w.offsets, w.lengths) for w in wanted]
    dests: List[Any] = [w.dest for w in wanted]
    structure = saved.get(STRUCTURE_KEY)
    object_keys: List[str] = []
    if objects:
        if structure is not None:
            object_keys = [STRUCTURE_KEY]
        else:
            for p in objects:
                e = saved.get(p)
                if e is None or e.kind != "object":
                    raise CheckpointNotFound(f"{where} has no object entry {p!r} for the template's "
                                             f"{type(by_path.get(p)).__name__}")
            object_keys = objects
    boxes += [TensorBox(item, k) for k in object_keys]
    dests += [None] * len(object_keys)
    if not boxes:
        return template
    entries = client.load_boxes(job, ckpt.checkpoint_id, boxes, into=dests, rank=rank, local_rank=local_rank,
                                world_size=world_size, timeout=timeout)
    got = entries[len(wanted):]
    if object_keys == [STRUCTURE_KEY]:
        obj = got[0]
        if not isinstance(obj, LoadedObject) or obj.format != STRUCTURE_FORMAT:
            raise InvalidArgument(f"{where}: entry {STRUCTURE_KEY} is not a ckptd structure")
        skeleton = _SkeletonUnpickler(io.BytesIO(obj.data)).load()
        _merge(template, skeleton, "", where)
    else:
        for p, obj in zip(object_keys, got):
            _set_path(template, p, _decode_object(p, obj))
    return template


def _index(node: Any, path: str, out: Dict[str, Any]) -> None:
    """path -> template leaf, for the tensor-like leaves."""
    if _tensor_leaf(node):
        out.setdefault(path, node)
    elif isinstance(node, Mapping):
        for k, v in node.items():
            _index(v, f"{path}/{k}" if path else str(k), out)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _index(v, f"{path}/{i}" if path else str(i), out)
    else:
        out.setdefault(path, node)
