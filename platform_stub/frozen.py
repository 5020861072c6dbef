"""``@frozen``: ``@dataclass(frozen=True)`` for records built on every payment or tap.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which
costs Python 3.11 about 150 ns a field: 1.8 us to build a ten-field record against
0.3 us for a plain dataclass (``benchmarks/README.md``, 2026-12-07). A payment builds a
handful of them (two accounts, the request, the transfer, the receipt) and clearing
several a tap, so the platform's hot records use this decorator instead. It makes the
same dataclass (repr, eq, hash, immutability, ``dataclasses.replace``, pickling), then
swaps ``__init__`` for one that fills the instance's ``__dict__`` in one step.

Classes it cannot speed up keep dataclass's own ``__init__``: those with
``__post_init__``, ``default_factory``, ``init=False``, init-only or keyword-only
fields, or slots.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_STATE = "__frozen_state__"  # the generated __init__'s one local; no field may take it


def frozen(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True)`` with a faster ``__init__`` where one is possible."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    init = _fast_init(cls)
    if init is not None:
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = init
    return cls


def row_getter(cls: type) -> Callable[[Any], tuple]:
    """A function giving a dataclass instance's field values in order, as a tuple, in one
    C call: rows for ``executemany`` and for pickling (``dataclasses.astuple`` deep-copies,
    and a loop of getattr costs a fourteen-field record about 1 us more)."""
    names = [f.name for f in dataclasses.fields(cls)]
    if len(names) == 1:  # attrgetter of one name gives the value, not a tuple
        name = names[0]
        return lambda instance: (getattr(instance, name),)
    return operator.attrgetter(*names)


def _fast_init(cls: type) -> Callable[..., None] | None:
    """An ``__init__`` that stores its arguments in ``__dict__``; None when the class's
    ``__init__`` does more than that."""
    fields = dataclasses.fields(cls)
    if not _plain(cls, fields):
        return None
    params, defaults = [], {}
    for f in fields:
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            defaults[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    stores = "".join(f"    {_STATE}[{f.name!r}] = {f.name}\n" for f in fields)
    source = f"def __init__(self, {', '.join(params)}):\n    {_STATE} = self.__dict__\n{stores}"
    namespace: dict = {}
    exec(source, defaults, namespace)  # noqa: S102 - the source holds field names only
    return namespace["__init__"]


def _plain(cls: type, fields: tuple[dataclasses.Field, ...]) -> bool:
    """True when ``__init__`` only stores its arguments (what the fast one does)."""
    return (
        not hasattr(cls, "__post_init__")
        and "__slots__" not in cls.__dict__
        and all(f.init and not f.kw_only for f in fields)
        and all(f.default_factory is dataclasses.MISSING for f in fields)
        and len(fields) == len(cls.__dataclass_fields__)  # no InitVar or ClassVar
        and all(f.name not in ("self", _STATE) for f in fields)
    )
