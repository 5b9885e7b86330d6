"""Which guest customers an incremental cycle must send, from the changed orders alone (pure).

A guest is one per normalized order email that no customer has, made from its first order
(earliest createdAt, then key). The full read derives every guest with one set-based query;
an incremental cycle would need the same query narrowed to the changed emails, which still
normalizes every order's email (no shop index serves `lower(trim(email))`). Instead, state
keeps each guest's first order (`Basis`: its createdAt in ms and its key, written with the
guest once Metrilo accepted it), and the changed orders of an email, in first-order order,
are compared with it:

- a customer has the email: no guest (state's customers, synced earlier in the same cycle);
- no guest in state (or a gone one): the earliest changed order makes it (a new guest);
- the kept first order is among the changed ones: the earliest changed order makes it (the
  first order edited, or an earlier one added), unless its createdAt moved later;
- otherwise an earlier changed order makes it; a later one leaves it as it is.

What this cannot see is settled by the guests' full read once per reconciliation window
(`SETTLED_LATER`, which `check` and `status` print). `Verdict.EXACT` marks the emails it
cannot decide from state (no basis kept yet, a createdAt that moved later or did not compose,
a tie at the same millisecond): those are derived by the exact query, narrowed to them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

SETTLED_LATER = (
    "a guest's first order deleted or its email changed; the older orders of an email whose "
    "customer was deleted or changed email; emails an order and a customer write differently "
    "beyond case and spaces"
)
"""The guests' changes an incremental cycle does not see: the guests' full read, once per
reconciliation window, settles them."""

FULL_READ = ("derived from every order; skipped while the checksum of the orders and "
             "customers it reads is unchanged, on PostgreSQL and MariaDB/MySQL")
"""How the guests' full read goes (cycle/inputs.py), as `check` and `status` say it."""


class Verdict(Enum):
    SEND = "send"  # the earliest changed order is the guest's first order: derive from it
    SKIP = "skip"  # the guest is unchanged, or the email is a customer's
    EXACT = "exact"  # state cannot tell: derive it with the exact query


@dataclass(frozen=True, slots=True)
class Basis:
    """A guest's first order as state keeps it: createdAt (ms, as composed) and its key."""

    created: int | None
    order: str

    def text(self) -> str:
        return json.dumps({"createdAt": self.created, "order": self.order},
                          separators=(",", ":"), sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> Basis | None:
        """The basis kept in state, or None (none kept, or a payload of another shape)."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or set(data) != {"createdAt", "order"}:
            return None
        created, order = data["createdAt"], data["order"]
        if not isinstance(order, str) or not (created is None or isinstance(created, int)):
            return None
        return cls(created, order)


def created_ms(payload: dict[str, Any]) -> int | None:
    """A composed guest's createdAt, when it composed to milliseconds."""
    value = payload.get("createdAt")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def decide(changed: Sequence[Basis], kept: Basis | None) -> Verdict:
    """What to do with the live guest of one email no customer has, given its changed orders
    in first-order order (the earliest first) and the first order kept with the guest. (An
    email a customer has makes no guest; one without a live guest is made from its earliest
    changed order: the caller decides both without composing anything.)"""
    first = changed[0]
    if kept is None or kept.created is None or first.created is None:
        return Verdict.EXACT
    edited = next((order for order in changed if order.order == kept.order), None)
    if edited is not None:
        # Every unchanged order comes after the kept first order; the edited one still comes
        # before them unless its date moved later, and the earliest changed one before it.
        later = edited.created is None or edited.created > kept.created
        return Verdict.EXACT if later else Verdict.SEND
    if first.created < kept.created:
        return Verdict.SEND
    if first.created > kept.created:
        return Verdict.SKIP
    return Verdict.EXACT  # the same millisecond: the query breaks the tie by the raw values
