"""Importing torch's sharded-tensor and distributed-checkpoint modules on every torch here."""

from __future__ import annotations

import sys
from typing import Any, Optional


def import_dcp() -> Any:
    """torch's distributed checkpoint module (``torch.distributed.checkpoint``, or
    ``torch.distributed._shard.checkpoint`` on torch 1.13).

    Debian's torch 1.13 declares a dataclass field whose default is an (unhashable)
    dataclass instance, which Python 3.11 refuses as a mutable default at import; the check
    is relaxed for that import, in this process only, by making such a default's class
    hashable (its instances are never mutated through the default)."""
    try:
        import torch.distributed.checkpoint as dcp  # torch >= 2.0
        if hasattr(dcp, "StorageWriter"):
            return dcp
    except ImportError:
        pass
    except ValueError:
        pass  # the same dataclass refusal, raised from the newer module name
    import dataclasses
    orig = dataclasses._get_field

    def lenient(cls, a_name, a_type, *rest):
        default = cls.__dict__.get(a_name)
        if isinstance(default, dataclasses.Field):
            default = default.default
        if default is not None and dataclasses.is_dataclass(type(default)) and type(default).__hash__ is None:
            type(default).__hash__ = object.__hash__
        return orig(cls, a_name, a_type, *rest)

    dataclasses._get_field = lenient
    try:
        import torch.distributed._shard.checkpoint as dcp
    finally:
        dataclasses._get_field = orig
    return dcp


def sharded_tensor_class() -> Optional[type]:
    """torch's ShardedTensor class when its module is already imported (a state dict can
    only hold one then), else None: the module is not imported for nothing."""
    for name in ("torch.distributed._shard.sharded_tensor.api", "torch.distributed._shard.sharded_tensor"):
        mod = sys.modules.get(name)
        cls = getattr(mod, "ShardedTensor", None) if mod is not None else None
        if cls is not None:
            return cls
    return None


def is_sharded_tensor(value: Any) -> bool:
    cls = sharded_tensor_class()
    return cls is not None and isinstance(value, cls)
