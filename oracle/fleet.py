"""Fleet mode: several daemons with the SAME oracle key share the agreements through PostgreSQL.

One committee member scaled out: every daemon opens the same store. Each one
* writes a heartbeat row (`fleet_members`) every lease/3; a member whose heartbeat is older than
  one lease is dead;
* holds agreement leases (`fleet_leases`: name -> holder, expires_at), renewed every lease/3, and
  probes only the agreements it holds. It claims free or expired leases with
  `SELECT ... FOR UPDATE SKIP LOCKED`, up to ceil(N / live members), and gives back what it holds
  above that share, so a new member gets work and a dead member's agreements are taken over
  within one lease;
* competes for ONE "sender" lease. Only its holder computes, signs and broadcasts reports (for
  every agreement: the samples of all members are in the shared store). Why a single sender: the
  committee member is one address, so every daemon would draw nonces from the same account, and
  two broadcasters would replace each other's transactions. Handing the role over needs no
  state: the transaction manager records every attempt in the shared database before it is
  broadcast, and the report rows move computed -> signed -> submitted with conditional updates,
  so a new sender resumes where the old one stopped and no report is moved twice.

All expiry times are on the DATABASE clock (one clock for every member, whatever the skew of
their own). A holder acts on a lease only until its own conservative local deadline: the local
monotonic time at which it renewed plus lease - lease/3 margin, so a daemon that stalled (GC,
swapped out) stops sending before another member can take the sender lease over.

Needs PostgreSQL (row locks, SKIP LOCKED); an SQLite store is refused by the configuration.
"""

from __future__ import annotations

import math
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, func, select, text, update
from sqlalchemy.dialects import postgresql

from .store import Store, StoreError, fleet_leases, fleet_members

SENDER = "sender"
PRUNE_AFTER_LEASES = 100


def agreement_lease(address: str) -> str:
    return f"agreement:{address.lower()}"


def default_member_id() -> str:
    """host-pid-random: unique across restarts, readable in the leases table."""
    return f"{socket.gethostname()[:30]}-{uuid.uuid4().hex[:8]}"


@dataclass
class FleetStatus:
    """What one step found: the agreements this member holds, whether it is the sender, the
    number of live members and this member's share."""

    held: set[str] = field(default_factory=set)  # lower-case addresses
    sender: bool = False
    live: int = 1
    share: int = 0
    taken_over: int = 0  # leases claimed this step that another member had held


class Fleet:
    """One member of a fleet. Call `step(addresses)` every `lease_s / 3` (the daemon does)."""

    def __init__(self, store: Store, lease_s: float, member: str | None = None) -> None:
        if store.engine.dialect.name != "postgresql":
            raise StoreError("fleet mode needs a PostgreSQL store (row locks with SKIP LOCKED); "
                             f"this store is {store.engine.dialect.name}")
        self.store = store
        self.lease_s = float(lease_s)
        self.member = member or default_member_id()
        self.status = FleetStatus()
        self._valid_until = 0.0  # local monotonic deadline for acting on what the last step held
        self._rows: set[str] = set()  # lease names known to have their row (inserted or found)

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    def _db_now(self, conn: Connection) -> float:
        # clock_timestamp(): the real time, not the transaction's start.
        return float(conn.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())

    def step(self, addresses: Iterable[str]) -> FleetStatus:
        """Heartbeat, renew, rebalance, claim; one transaction. Returns (and keeps) the status."""
        names = sorted({agreement_lease(a) for a in addresses})
        started = time.monotonic()
        c = fleet_leases.c
        with self.store._tx() as conn:  # noqa: SLF001 - the store's transaction and error mapping
            now = self._db_now(conn)
            until = now + self.lease_s
            ins = postgresql.insert(fleet_members).values(member=self.member, heartbeat_at=now, started_at=now)
            conn.execute(ins.on_conflict_do_update(index_elements=["member"], set_={"heartbeat_at": now}))
            # Members silent for many leases are gone for good (a restart gets a new default id).
            conn.execute(delete(fleet_members).where(
                fleet_members.c.heartbeat_at < now - PRUNE_AFTER_LEASES * self.lease_s))
            live = int(conn.execute(select(func.count()).select_from(fleet_members).where(
                fleet_members.c.heartbeat_at > now - self.lease_s)).scalar_one())
            share = math.ceil(len(names) / max(live, 1))
            new_rows = [n for n in names if n not in self._rows]
            if new_rows:
                # Every agreement has a row (free at first), so claiming is one locked SELECT.
                # Rows are never deleted, so each name is inserted once per member, not every
                # step (10,000 upserts every lease/3 from every member, at 10,000 agreements).
                conn.execute(postgresql.insert(fleet_leases).on_conflict_do_nothing(index_elements=["name"]),
                             [{"name": n, "holder": None, "expires_at": 0.0} for n in new_rows])
            # Renew what is still ours (a lease that expired but nobody took is still ours).
            conn.execute(update(fleet_leases).where(c.holder == self.member, c.name != SENDER)
                         .values(expires_at=until))
            mine = sorted(conn.execute(select(c.name).where(c.holder == self.member, c.name != SENDER)).scalars())
            # A set: `n in names` on the list cost 0.28-0.45 s a step at 10,000 agreements.
            wanted = set(names)
            gone = [n for n in mine if n not in wanted]  # no longer served (finished): let go
            mine = [n for n in mine if n in wanted]
            extra = mine[share:] if len(mine) > share else []
            if gone or extra:
                # Above our share (a member joined): give the surplus back, free at once.
                conn.execute(update(fleet_leases).where(c.name.in_(gone + extra), c.holder == self.member)
                             .values(holder=None, expires_at=0.0))
                mine = mine[:share]
            taken = 0
            need = share - len(mine)
            if need > 0:
                rows = conn.execute(
                    select(c.name, c.holder).where(c.name.in_(names), c.name != SENDER,
                                                   (c.holder.is_(None)) | (c.expires_at < now))
                    .order_by(c.name).limit(need).with_for_update(skip_locked=True)).all()
                if rows:
                    conn.execute(update(fleet_leases).where(c.name.in_([r.name for r in rows]))
                                 .values(holder=self.member, expires_at=until))
                    mine += [r.name for r in rows]
                    taken = sum(1 for r in rows if r.holder is not None)
            # The sender role: renew it, or take it when free or expired.
            conn.execute(postgresql.insert(fleet_leases).values(name=SENDER, holder=None, expires_at=0.0)
                         .on_conflict_do_nothing(index_elements=["name"]))
            sender_row = conn.execute(select(c.holder, c.expires_at).where(c.name == SENDER)
                                      .with_for_update()).one()
            sender = sender_row.holder == self.member or sender_row.holder is None or sender_row.expires_at < now
            if sender:
                conn.execute(update(fleet_leases).where(c.name == SENDER).values(holder=self.member, expires_at=until))
        self._rows.update(new_rows)  # committed
        self._valid_until = started + self.lease_s - self.renew_every_s
        self.status = FleetStatus(held={n.split(":", 1)[1] for n in mine}, sender=sender, live=live,
                                  share=share, taken_over=taken)
        return self.status

    def holds(self, address: str) -> bool:
        """True while this member may probe `address` (held at the last step, lease not run out)."""
        return time.monotonic() < self._valid_until and address.lower() in self.status.held

    def is_sender(self) -> bool:
        """True while this member may sign and broadcast for the key."""
        return time.monotonic() < self._valid_until and self.status.sender

    def leave(self) -> None:
        """On a clean stop: free every lease and the heartbeat, so others take over at once."""
        self._valid_until = 0.0
        with self.store._tx() as conn:  # noqa: SLF001
            conn.execute(update(fleet_leases).where(fleet_leases.c.holder == self.member)
                         .values(holder=None, expires_at=0.0))
            conn.execute(delete(fleet_members).where(fleet_members.c.member == self.member))
