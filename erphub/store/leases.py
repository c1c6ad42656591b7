"""Pipeline leases: a scheduled run, a manual run and webhook deliveries of one pipeline never overlap.

Two overlapping runs could both find no link for a new record and both create it. A lease row per
pipeline, taken in a transaction, serialises them across processes. A lease names its holder
(host:pid:start:run, start being the process's start time in clock ticks since boot, and host the
host name with the inode of the process's pid namespace: containers that share a host name but not
their pids are different hosts here, or each would find the other's live pid dead); one left behind
by a killed process on this host is taken over at once, one from elsewhere when it expires (runs
renew theirs before their writes: `engine.lease`). A holder is dead when its pid is gone, is a zombie (exited,
not yet reaped: `kill(pid, 0)` still succeeds on it), or now names another process (pid reuse: another
start time).

"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from erphub.core.records import utcnow
from erphub.store.db import as_utc
from erphub.store.tables import LeaseRow


def _host() -> str:
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace}"


HOST = _host()
Sessions = Callable[[], Session]


def process_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process from /proc/<pid>/stat; None if unknown (no
    such process, or no /proc). proc(5): the name in field 2 may hold spaces and parentheses, so the
    fields are counted after its last ')'; state is field 3, starttime field 22."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


def owner_name(run_id: str) -> str:
    pid = os.getpid()
    stat = process_stat(pid)
    return f"{HOST}:{pid}:{stat[1] if stat else 0}:{run_id}"


def _holder_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    parts = rest.split(":")
    pid_text = parts[0]
    # host:pid:start:run (start 0 when unknown); host:pid:run from before start times were kept.
    started = parts[1] if len(parts) >= 3 and parts[1].isdigit() and parts[1] != "0" else None
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process: alive unless /proc says otherwise
    stat = process_stat(pid)
    if stat is None:
        return False
    state, start = stat
    return state in ("Z", "X") or (started is not None and start != started)


def _try_acquire(sessions: Sessions, pipeline: str, owner: str, ttl_s: float) -> str | None:
    now = utcnow()
    with sessions() as session, session.begin():
        row = session.execute(select(LeaseRow.owner, LeaseRow.expires_at)
                              .where(LeaseRow.pipeline == pipeline)).first()
        if row is None:
            session.add(LeaseRow(pipeline=pipeline, owner=owner, acquired_at=now,
                                 expires_at=now + timedelta(seconds=ttl_s)))
            return None
        seen_owner, seen_expiry = row
        expired = (as_utc(seen_expiry) or now) <= now
        if seen_owner != owner and not expired and not _holder_is_dead(seen_owner):
            return str(seen_owner)
        # Compare-and-set on what we saw: of two processes taking over one stale lease (SQLite has
        # no SELECT ... FOR UPDATE), only the first UPDATE matches; the other sees the new holder.
        taken = session.execute(
            update(LeaseRow)
            .where(LeaseRow.pipeline == pipeline, LeaseRow.owner == seen_owner, LeaseRow.expires_at == seen_expiry)
            .values(owner=owner, acquired_at=now, expires_at=now + timedelta(seconds=ttl_s)))
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return None
    return holder(sessions, pipeline) or "another run"


def acquire(sessions: Sessions, pipeline: str, owner: str, ttl_s: float) -> str | None:
    """Take the lease; None when ours now, else the current holder's name."""
    try:
        return _try_acquire(sessions, pipeline, owner, ttl_s)
    except IntegrityError:  # another process inserted the row between our read and our insert
        return _try_acquire(sessions, pipeline, owner, ttl_s)


# Renewed before writes (engine.lease): one Core statement built once (an ORM update cost twice the CPU, bench (b)).
_LEASES = cast(Table, LeaseRow.__table__)
_RENEW = (update(_LEASES)
          .where(_LEASES.c.pipeline == bindparam("lease_pipeline"), _LEASES.c.owner == bindparam("lease_owner"))
          .values(expires_at=bindparam("lease_expires_at")))


def renew(sessions: Sessions, pipeline: str, owner: str, ttl_s: float) -> bool:
    """Extend our lease; False when it is no longer ours (it expired and another run took it)."""
    with sessions() as session, session.begin():
        result = session.connection().execute(_RENEW, {
            "lease_pipeline": pipeline, "lease_owner": owner,
            "lease_expires_at": utcnow() + timedelta(seconds=ttl_s)})
        return bool(result.rowcount)


def release(sessions: Sessions, pipeline: str, owner: str) -> None:
    with sessions() as session, session.begin():
        session.execute(delete(LeaseRow).where(LeaseRow.pipeline == pipeline, LeaseRow.owner == owner))


def holder(sessions: Sessions, pipeline: str) -> str | None:
    with sessions() as session:
        return session.scalar(select(LeaseRow.owner).where(LeaseRow.pipeline == pipeline))
