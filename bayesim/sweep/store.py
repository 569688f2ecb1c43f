"""The results store of a sweep: one SQLite file in WAL mode, one row per point.

A point is identified by the hash of its fully resolved config (:func:`point_id`), so the same
config is the same point whatever the order or the process that ran it. Each finished point is
committed in its own transaction, so a sweep killed at any moment (SIGKILL included) keeps every
point it finished and none twice; re-running skips the finished points. A failed point is stored
with its error (and retried by the next run); it never stops the sweep. The store remembers the
hash of the sweep spec it belongs to and refuses to mix in another spec's points.

WAL mode lets readers (``bayesim plot``, an export) work while a sweep writes; ``synchronous =
NORMAL`` keeps every commit across a crash of the process (an operating-system crash or power loss
may lose the last commits, never corrupt the file; SQLite documentation, "WAL mode").
"""

import csv
import hashlib
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bayesim.atomic import write_bytes
from bayesim.errors import ConfigError

DONE, FAILED = "done", "failed"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    point_id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    metrics TEXT,
    error TEXT,
    seconds REAL,
    finished_at REAL NOT NULL
);
"""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal configs give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def point_id(config: dict[str, Any]) -> str:
    """The identity of a sweep point: SHA-256 of its fully resolved config (hex, 16 bytes)."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:32]


class ResultsStore:
    """The SQLite store of one sweep spec (``spec_hash``) at ``path``."""

    def __init__(self, path: str | os.PathLike[str], spec_hash: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a bayesim results store ({exc}); choose "
                              f"another --out directory") from None
        with self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE key = 'spec_hash'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('spec_hash', ?)", (spec_hash,))
            elif row[0] != spec_hash:
                raise ConfigError(
                    f"{self.path} holds the results of a different sweep spec (hash {row[0][:12]}"
                    f"…, this one {spec_hash[:12]}…); use another --out directory or delete it")
        self.spec_hash = spec_hash

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing ----
    def record(self, config: dict[str, Any], metrics: dict[str, Any],
               seconds: float | None = None) -> str:
        """Store a finished point (replacing an earlier failure of it) in one transaction."""
        return self._write(config, DONE, canonical_json(metrics), None, seconds)

    def record_failure(self, config: dict[str, Any], error: str,
                       seconds: float | None = None) -> str:
        """Store a failed point with its error; a finished point is never overwritten."""
        return self._write(config, FAILED, None, error, seconds)

    def _write(self, config, status, metrics, error, seconds) -> str:
        pid = point_id(config)
        with self._transaction():
            current = self._db.execute("SELECT status FROM points WHERE point_id = ?",
                                       (pid,)).fetchone()
            if current is not None and current[0] == DONE:
                return pid  # finished already (e.g. by another worker): keep the first result
            self._db.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (pid, canonical_json(config), status, metrics, error, seconds,
                              time.time()))
        return pid

    # ---- reading ----
    def finished_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute(
            "SELECT point_id FROM points WHERE status = 'done'")}

    def pending(self, configs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The configs not finished yet (failed ones included: they are retried), in order."""
        done = self.finished_ids()
        return [c for c in configs if point_id(c) not in done]

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every stored point: id, status, config, metrics, error, seconds (in insertion order)."""
        query = "SELECT point_id, status, config, metrics, error, seconds FROM points"
        args: tuple = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        return [{"point_id": pid, "status": st, "config": json.loads(cfg),
                 "metrics": json.loads(met) if met else {}, "error": err, "seconds": sec}
                for pid, st, cfg, met, err, sec in self._db.execute(query + " ORDER BY rowid",
                                                                    args)]

    # ---- export ----
    def flat_rows(self) -> list[dict[str, Any]]:
        """One flat dict per point: status, error, seconds, ``config.<dotted key>`` and
        ``metric.<name>`` columns."""
        out = []
        for row in self.rows():
            flat = {"point_id": row["point_id"], "status": row["status"],
                    "error": row["error"] or "", "seconds": row["seconds"]}
            flat.update({f"config.{k}": v for k, v in flatten(row["config"]).items()})
            flat.update({f"metric.{k}": v for k, v in flatten(row["metrics"]).items()})
            out.append(flat)
        return out

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        """All points as CSV (written atomically)."""
        rows = self.flat_rows()
        columns = _columns(rows)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        write_bytes(Path(path), buffer.getvalue().encode())
        return Path(path)

    def export_parquet(self, path: str | os.PathLike[str]) -> Path:
        """All points as Parquet (pyarrow; written atomically). Lists and dicts become JSON
        text, and a column that mixes text with numbers becomes text."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self.flat_rows()
        columns = {}
        for name in _columns(rows):
            values = [_cell(row.get(name)) for row in rows]
            if any(isinstance(v, str) for v in values) and \
                    any(v is not None and not isinstance(v, str) for v in values):
                values = [None if v is None else str(v) for v in values]
            columns[name] = values
        table = pa.table(columns)
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        write_bytes(Path(path), buffer.getvalue().to_pybytes())
        return Path(path)


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted keys (the CSV's ``config.*`` and ``metric.*``)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(flatten(item, name + "."))
        else:
            out[name] = item
    return out


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value
