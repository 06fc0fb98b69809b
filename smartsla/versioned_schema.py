"""Schema versions of the database components: the oracle's store, the event index and the
multi-level index, each with its own version table, sharing one database or not.

A component describes itself once (`VersionedSchema`: its tables, its version table, its current
version and one upgrade step per version) and calls `ensure(conn)` in the transaction that opens
it. `ensure`:

* takes a PostgreSQL advisory lock for the rest of the transaction (`LOCK_KEY`, shared by every
  component), so daemons starting at once on one database create or upgrade it one at a time
  instead of failing with "relation already exists";
* creates the tables and records the current version in a database without them;
* upgrades an older schema one version at a time (each step records its version, all in the
  caller's transaction: a failed upgrade leaves the previous version whole);
* adopts tables made by a release that did not version them yet (`unversioned`), as that version;
* refuses, with a message naming the problem, a version newer than the code's (written by a newer
  smartsla: downgrading would lose data), an empty version table (damaged), and tables of ours
  that exist without a version table (refusing to guess what the database is).

Why not Alembic: three components with a handful of additive steps between them; Alembic would
add a migration environment per component, its own version table format and a dependency,
for what fits in this module and reads in one screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Column, Connection, Double, Integer, MetaData, Table, func, inspect, select, text

LOCK_KEY = 0x5A5A_0001  # PostgreSQL advisory lock held while any component's schema is created or upgraded

Upgrade = Callable[[Connection], None]


def version_table(metadata: MetaData, name: str) -> Table:
    """A component's version table: one row per version applied, with when."""
    return Table(
        name, metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("applied_at", Double, nullable=False),
    )


@dataclass(frozen=True)
class VersionedSchema:
    """One component's schema. `upgrades[v]` brings version v-1 to v (tables and columns only: it
    does not record the version, `ensure` does); there is one step for every version above
    `oldest`. `error` is raised for a damaged or foreign database, `too_new` (a subclass of it)
    for a newer one. `unversioned`: (version, table names) of a release that created exactly
    those tables without a version table; such a database is adopted as that version."""

    component: str  # "oracle store", "event index": how messages name it
    owner: str  # "oracle", "smartsla": whose code reads it ("newer than this oracle's 4")
    metadata: MetaData  # every table of the component, the version table included
    table: Table  # the version table (in `metadata`)
    version: int
    upgrades: Mapping[int, Upgrade]
    error: type[Exception]
    too_new: type[Exception]
    oldest: int = 1
    unversioned: tuple[int, frozenset[str]] | None = None
    _names: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A missing step would silently leave a database half-upgraded: refuse to define one.
        expected = set(range(self.oldest + 1, self.version + 1))
        if set(self.upgrades) != expected:
            raise ValueError(f"{self.component}: upgrade steps {sorted(self.upgrades)} do not match versions "
                             f"{sorted(expected)} (one step per version above {self.oldest})")
        if self.table.metadata is not self.metadata:
            raise ValueError(f"{self.component}: the version table must be one of its tables")
        object.__setattr__(self, "_names", frozenset(t.name for t in self.metadata.sorted_tables))

    def current(self, conn: Connection) -> int | None:
        """The version recorded in the database (None: the version table is empty)."""
        found = conn.execute(select(func.max(self.table.c.version))).scalar()
        return None if found is None else int(found)

    def _record(self, conn: Connection, version: int) -> None:
        conn.execute(self.table.insert().values(version=version, applied_at=time.time()))

    def ensure(self, conn: Connection) -> None:
        """Create, adopt or upgrade the schema in the caller's transaction, or raise (see the
        module's notes). Afterwards the database is at `self.version`."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        existing = set(inspect(conn).get_table_names())
        if self.table.name in existing:
            found = self.current(conn)
            if found is None:
                raise self.error(f"{self.table.name} table is empty: a damaged {self.component}, or not one")
        else:
            ours = existing & self._names
            if not ours:
                self.metadata.create_all(conn)
                self._record(conn, self.version)
                return
            if self.unversioned is None or ours != self.unversioned[1]:
                raise self.error(f"tables {sorted(ours)} exist without a {self.table.name}: "
                                 f"refusing to guess what this database is (expected a {self.component})")
            found = self.unversioned[0]  # made by the release before versions: adopt its tables
            self.table.create(conn)
            self._record(conn, found)
        if found > self.version:
            raise self.too_new(
                f"{self.component} schema version {found} is newer than this {self.owner}'s {self.version}: "
                "it was written by a newer smartsla; upgrade smartsla instead of downgrading the data")
        if found < self.oldest:
            raise self.error(f"{self.component} schema version {found} is older than the oldest this smartsla "
                             f"upgrades ({self.oldest})")
        for version in range(found + 1, self.version + 1):
            self.upgrades[version](conn)
            self._record(conn, version)
