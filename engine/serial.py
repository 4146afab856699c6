"""The one cattrs converter for everything that crosses a boundary.

Customer views and customer state are unstructured to JSON-ready dicts with
it (for ``--json`` output, reports and store rows) and customer state is
structured back from them (stores). Money stays exact: Decimals travel as
strings, datetimes as ISO 8601 text with their offset; the state's own
instants and amounts are integers already.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import cattrs

from poletti.engine.ledger import Lot, PointsLedger
from poletti.engine.state import PurchaseRecord, WindowTotals, flat_purchases, window_exit

converter = cattrs.Converter()

converter.register_unstructure_hook(Decimal, str)
converter.register_structure_hook(Decimal, lambda value, _t: Decimal(str(value)))
converter.register_unstructure_hook(datetime, lambda value: value.isoformat())
converter.register_structure_hook(datetime, lambda value, _t: datetime.fromisoformat(value))
converter.register_unstructure_hook(date, lambda value: value.isoformat())
converter.register_structure_hook(date, lambda value, _t: date.fromisoformat(value))
converter.register_unstructure_hook(frozenset, lambda value: sorted(value))


def _unstructure_ledger(ledger: PointsLedger) -> dict[str, Any]:
    state = ledger.state()
    state["lots"] = [converter.unstructure(lot) for lot in ledger.lots]
    return state


def _structure_ledger(value: dict[str, Any], _type: Any) -> PointsLedger:
    fields = dict(value)
    fields["lots"] = [converter.structure(lot, Lot) for lot in value.get("lots", ())]
    return PointsLedger.restore(**fields)


converter.register_unstructure_hook(PointsLedger, _unstructure_ledger)
converter.register_structure_hook(PointsLedger, _structure_ledger)


def _tuple_key(value: Any, _type: Any) -> tuple[object, ...] | None:
    return None if value is None else tuple(value)


converter.register_structure_hook(tuple[object, ...] | None, _tuple_key)


def _structure_purchase(value: Any, _type: Any) -> PurchaseRecord:
    """A stored purchase: a list in ``PurchaseRecord``'s order, or the dict states were stored with before it
    became a tuple (field name → value), so that states saved by an earlier version read back the same."""
    if isinstance(value, dict):
        return (value["id"], value["at"], value["amount"], value.get("refunded", 0), value.get("points", 0),
                value.get("reversed", 0), value.get("partner"))
    purchase_id, at, amount, refunded, points, reversed_points, partner = value
    return (purchase_id, at, amount, refunded, points, reversed_points, partner)


converter.register_structure_hook_func(lambda type_: type_ == PurchaseRecord, _structure_purchase)


def _structure_window(value: dict[str, Any], _type: Any) -> WindowTotals:
    """A stored window: its exits as ``window_exit`` ints, or as the (leaves, index) pairs states were stored
    with before (those map to ints in the same order, so the heap stays a heap)."""
    exits = [entry if isinstance(entry, int) else window_exit(int(entry[0]), int(entry[1]))
             for entry in value.get("exits", ())]
    return WindowTotals(int(value.get("spend", 0)), int(value.get("count", 0)), exits)


converter.register_structure_hook(WindowTotals, _structure_window)
# (A window is a list, the heap of its exits: stored as the attrs class it was, {"spend", "count", "exits"}.)
converter.register_unstructure_hook(WindowTotals, lambda window: {"spend": window.spend, "count": window.count,
                                                                  "exits": list(window)})


def _register_state() -> None:
    """Customer state comes back exactly as ``Processor.new_state`` builds it: unused rule lists as ``()``."""
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn

    from poletti.engine.state import CustomerState

    structure = make_dict_structure_fn(CustomerState, converter)
    unstructure = make_dict_unstructure_fn(CustomerState, converter)

    def structure_state(value: dict[str, Any], _type: Any) -> CustomerState:
        # Purchases are stored one record each (a list, or a dict as before they were tuples) and kept flat.
        if value.get("purchases"):
            value = {**value, "purchases": flat_purchases(_structure_purchase(record, PurchaseRecord)
                                                          for record in value["purchases"])}
        state = structure(value, _type)
        for name in ("windows", "metric_events", "stamps", "tier_held", "tier_keep_until", "segments",
                     "when_active", "wallet"):
            if not getattr(state, name):
                setattr(state, name, ())
        return state

    def unstructure_state(state: CustomerState) -> dict[str, Any]:
        data = unstructure(state)
        data["purchases"] = [list(record) for record in state.purchase_records()]
        return data

    converter.register_structure_hook(CustomerState, structure_state)
    converter.register_unstructure_hook(CustomerState, unstructure_state)


_register_state()
