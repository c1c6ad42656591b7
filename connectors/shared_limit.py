"""A token bucket held in PostgreSQL, so every process on every machine of a hub shares one quota.

`rate_limit: {per_second: R, shared: true}` on a system puts its global bucket here, in the hub's
PostgreSQL store, instead of in process memory (`ratelimit.TokenBucket`): N workers then send at most
R requests a second between them, not N x R.

One row per system in `erphub_rate_buckets`, a table of the store's migrations (0009): it exists once
the store is migrated (by opening it, or by `erphub deploy`), never made here, so workers never race
on DDL. A turn is one UPDATE that refills the row by the time passed on the database server's clock
(one clock for all machines, so their own clocks need not agree), takes a token and returns the
balance. The row lock orders concurrent callers; the caller sleeps outside the transaction, exactly as
`TokenBucket.reserve` does in memory (the balance may go negative: the wait is -balance / rate). Wider
headroom than the in-memory bucket (SHARED_HEADROOM: turns cross processes and a database).

Why PostgreSQL and not Redis or Prefect's global concurrency limits: the scale-out store already is
PostgreSQL, so there is no further service to run, secure and monitor, and a turn costs one round trip
(~0.3 ms on loopback). Prefect's limits with slot decay are leased over the Prefect API (several HTTP
calls a turn, and a slot decays in whole slots per second, too coarse for a bucket with burst 1).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from erphub.connectors.ratelimit import SHARED_HEADROOM
from erphub.core.errors import StoreError

TABLE = "erphub_rate_buckets"
_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for "relation does not exist"

_SEED = sa.text(f"""
    insert into {TABLE} (name, tokens, stamp)
    values (:name, :burst, extract(epoch from clock_timestamp()))
    on conflict (name) do nothing""")
_TURN = sa.text(f"""
    update {TABLE} as b
       set tokens = least(cast(:burst as double precision), b.tokens + (n.now - b.stamp) * :rate) - 1,
           stamp = n.now
      from (select extract(epoch from clock_timestamp())::double precision as now) as n
     where b.name = :name
 returning b.tokens""")

_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    engine = _ENGINES.get(url)
    if engine is None:
        engine = sa.create_engine(url, pool_size=2, max_overflow=8, pool_pre_ping=True)
        _ENGINES[url] = engine
    return engine


class PostgresTokenBucket:
    """`rate` tokens a second, at most `burst` stored, in the row `name` of `erphub_rate_buckets`.

    Has the `reserve()` of `ratelimit.TokenBucket`, so `RateLimiter` uses it as its global bucket."""

    def __init__(self, url: str, name: str, rate: float, burst: int = 1, *,
                 headroom: float = SHARED_HEADROOM) -> None:
        if not url.startswith("postgresql"):
            raise ValueError("a shared rate limit needs the store on PostgreSQL")
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst >= 1")
        self.name = name
        self.rate = rate
        self.burst = burst
        self._effective = rate * headroom
        self._engine = _engine(url)
        self._ready = False

    def _prepare(self) -> None:
        # `on conflict do nothing`: workers seeding the same system's row at once all succeed.
        try:
            with self._engine.begin() as conn:
                conn.execute(_SEED, {"name": self.name, "burst": float(self.burst)})
        except DBAPIError as exc:
            if _sqlstate(exc) != _UNDEFINED_TABLE:
                raise
            raise StoreError(
                f"the shared rate limit of {self.name!r} needs the table {TABLE}, which the store does not have: "
                f"the store is not migrated (upgrade it with `erphub deploy --config FILE`, or any erphub command "
                f"that opens the store, such as `erphub status --config FILE`)") from None
        self._ready = True

    def reserve(self) -> float:
        """Take a token now; return how long the caller must wait before using it."""
        if not self._ready:
            self._prepare()
        with self._engine.begin() as conn:
            tokens = float(conn.execute(_TURN, {"name": self.name, "burst": float(self.burst),
                                                "rate": self._effective}).scalar_one())
        return 0.0 if tokens >= 0 else -tokens / self._effective


def _sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a driver error (psycopg 3 calls it `sqlstate`, psycopg2 `pgcode`)."""
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
