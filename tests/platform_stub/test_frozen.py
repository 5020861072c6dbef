"""``@frozen`` builds the same records as ``@dataclass(frozen=True)``, only faster."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest

from platform_stub.frozen import frozen, row_getter


@frozen
class Fast:
    name: str
    amount_fen: int
    note: str | None = None


@dataclass(frozen=True)
class Reference:
    name: str
    amount_fen: int
    note: str | None = None


def test_the_fast_init_is_the_one_in_use() -> None:
    assert Fast.__init__.__qualname__ == "Fast.__init__"
    assert Fast.__init__ is not Reference.__init__
    assert "__frozen_state__" in Fast.__init__.__code__.co_varnames
    assert _sets_each_field_through_object(Reference)
    assert not _sets_each_field_through_object(Fast)


def _sets_each_field_through_object(cls: type) -> bool:
    """dataclass's own frozen ``__init__`` (``object.__setattr__`` per field)."""
    return "__setattr__" in cls.__init__.__code__.co_names


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("a", 1), {}),
        (("a", 1, "n"), {}),
        (("a",), {"amount_fen": 2}),
        ((), {"name": "b", "amount_fen": 3, "note": "x"}),
    ],
)
def test_same_fields_repr_eq_and_hash_as_a_frozen_dataclass(args: tuple, kwargs: dict) -> None:
    fast, ref = Fast(*args, **kwargs), Reference(*args, **kwargs)
    assert dataclasses.astuple(fast) == dataclasses.astuple(ref)
    assert repr(fast).replace("Fast", "Reference") == repr(ref)
    assert fast == Fast(*args, **kwargs) and hash(fast) == hash(Fast(*args, **kwargs))
    assert fast != Fast("other", 9)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), (("a",), {}), (("a", 1), {"bogus": 1}), (("a", 1, "n", "extra"), {})],
)
def test_bad_arguments_fail_as_they_do_for_a_dataclass(args: tuple, kwargs: dict) -> None:
    with pytest.raises(TypeError):
        Reference(*args, **kwargs)
    with pytest.raises(TypeError):
        Fast(*args, **kwargs)


def test_still_immutable_replaceable_and_picklable() -> None:
    record = Fast("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.amount_fen = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del record.name  # type: ignore[misc]
    assert dataclasses.replace(record, amount_fen=5) == Fast("a", 5)
    assert pickle.loads(pickle.dumps(record)) == record


def test_classes_it_cannot_speed_up_keep_the_dataclass_init() -> None:
    @frozen
    class WithFactory:
        items: list = field(default_factory=list)

    @frozen
    class WithPostInit:
        amount_fen: int

        def __post_init__(self) -> None:
            if self.amount_fen < 0:
                raise ValueError("negative")

    @frozen
    class WithStateField:
        __frozen_state__: int

    for cls in (WithFactory, WithPostInit, WithStateField):
        assert _sets_each_field_through_object(cls), cls
    assert WithFactory().items == [] and WithFactory().items is not WithFactory().items
    with pytest.raises(ValueError, match="negative"):
        WithPostInit(-1)


@frozen
class Single:
    amount_fen: int


def test_row_getter_gives_the_fields_in_order_as_astuple_does() -> None:
    fast = Fast("tea", 300, None)
    assert row_getter(Fast)(fast) == dataclasses.astuple(fast) == ("tea", 300, None)
    assert Fast(*row_getter(Fast)(fast)) == fast
    assert row_getter(Reference)(Reference("bun", 150, "x")) == ("bun", 150, "x")
    assert row_getter(Single)(Single(7)) == (7,)  # a tuple even for one field
