"""server/store/quick_init.py: a ledger row built by the quick `__init__` is the row the
dataclass's own would build, and stays frozen."""
from __future__ import annotations

import dataclasses

import pytest

from server.store.quick_init import quick_init
from server.store.quota import LedgerRow


def shape(decorate):
    """A ledger row's shape: plain fields, plain defaults, a __post_init__ that fills one in."""
    @decorate
    @dataclasses.dataclass(frozen=True)
    class Row:
        a: int
        b: str | None
        c: int = 0
        d: tuple = ()
        e: str | None = None

        def __post_init__(self) -> None:
            if self.e is None:
                object.__setattr__(self, "e", f"from {self.b}")
    return Row


Plain, Quick = shape(lambda cls: cls), shape(quick_init)  # the dataclass's own __init__, the quick one


@pytest.mark.parametrize("args, kwargs", [
    ((1, "x"), {}),
    ((1, "x", 5, (1, 2), "given"), {}),
    ((), {"b": "y", "a": 2, "e": "named"}),
    ((3,), {"b": None, "d": ("t",)}),
])
def test_the_quick_init_builds_what_the_dataclasses_own_builds(args, kwargs):
    plain, quick = Plain(*args, **kwargs), Quick(*args, **kwargs)
    assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert vars(quick) == vars(plain)


def test_it_refuses_what_the_dataclass_would_refuse():
    with pytest.raises(TypeError):
        Quick(1)  # b is required
    with pytest.raises(TypeError):
        Quick(1, "x", f=3)
    with pytest.raises(TypeError):
        Quick(1, "x", a=2)


def test_a_ledger_row_stays_frozen_and_takes_its_kinds_api():
    row = LedgerRow(1.5, "rid", 7, "m", "m", 3, "images", 200, cost=10)
    assert row.api == "images" and row.cost == 10 and row.stream is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.cost = 11  # type: ignore[misc]
    changed = dataclasses.replace(row, cost=12, api="chat")
    assert (changed.cost, changed.api, row.cost) == (12, "chat", 10)
    assert changed != row and hash(row) == hash(dataclasses.replace(row))
    assert LedgerRow.__init__.__qualname__ == "LedgerRow.__init__"


def test_it_takes_only_frozen_dataclasses_of_plain_fields():
    with pytest.raises(TypeError):
        quick_init(dataclasses.dataclass(type("Open", (), {"__annotations__": {"a": int}})))
    with pytest.raises(TypeError):
        quick_init(dataclasses.dataclass(frozen=True)(type("Made", (), {
            "__annotations__": {"a": list}, "a": dataclasses.field(default_factory=list)})))
