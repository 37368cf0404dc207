"""Store and forward: what the gateway read waits in a local SQLite file until the server took it.

Every poll's rows are written (one transaction) before anything is sent. The file is in WAL mode
with ``synchronous=NORMAL``: a commit survives the process's death (SIGKILL, the OOM killer, a
crash), and is not fsynced on the event loop's thread, where one fsync per poll (FULL) stalled
every link of a 1,000-meter gateway behind a busy disk. What a power cut can take is the last
commits before the next checkpoint; the meters keep their registers and lifetime counters, so
the next poll reads the same energy again (a lost reading coarsens the series, it loses no kWh). The forwarder takes the
oldest rows of a kind, posts them, and deletes them only after the server answered 200; a crash
between the server's commit and our delete sends them again, which the server's dedupe answers
as duplicates (readings: (meter, register, read_at); samples: (device, ts); statuses: (device,
observed_at)). So every row arrives once, in the order it was read.

A batch the server refuses as a whole (400: the body) cannot be helped by sending it again: it
is moved to ``dead`` with the answer, for an operator, so that it does not block the rows behind
it. Single rows the server refuses inside a 200 answer are logged by the forwarder; they are the
server's judgement (an unknown meter, say) and stay refused.

The file is used from one process; sqlite3 calls are short (an insert of one poll, a select of
one batch) and run on the event loop's thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

KINDS = ("readings", "telemetry", "status")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    row TEXT NOT NULL,
    queued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind_id ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    row TEXT NOT NULL,
    queued_at REAL NOT NULL,
    refused_at REAL NOT NULL,
    answer TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Batch:
    """Rows of one kind, oldest first, with their queue ids and the time the first was queued [s, epoch]."""

    kind: str
    ids: list[int]
    rows: list[dict]
    first_queued_at: float


class Queue:
    """The gateway's outbox in a SQLite file.

    Parameters
    ----------
    path : path
        The file (made with its folder when missing). ``":memory:"`` for tests that need no file.
    """

    def __init__(self, path: str | Path):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def put(self, kind: str, rows: list[dict]) -> None:
        """Keep ``rows`` of ``kind`` (one transaction: all of them or none)."""
        if kind not in KINDS:
            raise ValueError(f"unknown queue kind {kind!r}")
        if not rows:
            return
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO outbox (kind, row, queued_at) VALUES (?, ?, ?)",
                                [(kind, json.dumps(r, separators=(",", ":")), now) for r in rows])

    def take(self, kind: str, limit: int) -> Batch | None:
        """The oldest ``limit`` rows of ``kind`` (left in the queue until :meth:`done`)."""
        found = self.db.execute("SELECT id, row, queued_at FROM outbox WHERE kind = ? ORDER BY id LIMIT ?",
                                (kind, limit)).fetchall()
        if not found:
            return None
        return Batch(kind, [r[0] for r in found], [json.loads(r[1]) for r in found], found[0][2])

    def done(self, batch: Batch) -> None:
        """The server took ``batch``: forget it."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in batch.ids])

    def bury(self, batch: Batch, answer: str) -> None:
        """The server refused ``batch`` as a whole: keep it aside with the answer, off the queue."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO dead (id, kind, row, queued_at, refused_at, answer) "
                "SELECT id, kind, row, queued_at, ?, ? FROM outbox WHERE id = ?",
                [(now, answer[:2000], i) for i in batch.ids])
            self.db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in batch.ids])

    def pending(self) -> dict[str, int]:
        """Rows waiting, per kind."""
        counts = dict(self.db.execute("SELECT kind, count(*) FROM outbox GROUP BY kind").fetchall())
        return {kind: counts.get(kind, 0) for kind in KINDS}

    def dead_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM dead").fetchone()[0]
