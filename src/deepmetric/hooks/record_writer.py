"""``RecordWriter``: keeps scalar records per group and writes them to CSV files and SQLite.

A *group* is a named table (e.g. ``"metric_loss_TripletMarginLoss"``); each row holds the values of
one ``global_iteration`` (an iteration for training records, an epoch for accuracies). Rows of the
same group and iteration are merged. :meth:`RecordWriter.save` writes ``<folder>/<group>.csv`` (the
whole history, rewritten so that a column added later gets a header) and upserts the new rows into
``<folder>/logs.db`` (one table per group) and, when given, a global SQLite database shared by
several experiments (tables carry an ``experiment_name`` column there).
"""

from __future__ import annotations

import csv
import os
import sqlite3
from collections.abc import Mapping
from typing import Any

from .._validation import fail

ITERATION_KEY = "global_iteration"
LOCAL_DB_NAME = "logs.db"
_OWNER = "RecordWriter"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class RecordWriter:
    """Scalar records in memory, saved to CSV files and SQLite databases.

    Args:
        folder: directory of the CSV files and the local ``logs.db``.
        global_db_path: optional SQLite file shared by experiments.
        experiment_name: this experiment's name in the global database (default: the folder name).
        is_new_experiment: with a global database, raise if ``experiment_name`` already has rows;
            False appends to an existing experiment.
    """

    def __init__(
        self,
        folder: str,
        global_db_path: str | None = None,
        experiment_name: str | None = None,
        is_new_experiment: bool = True,
    ) -> None:
        if not isinstance(folder, (str, os.PathLike)):
            fail(_OWNER, "`folder` to be a path", type(folder).__name__, exc=TypeError)
        self.folder = os.fspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.db_path = os.path.join(self.folder, LOCAL_DB_NAME)
        self.global_db_path = global_db_path
        self.experiment_name = experiment_name or os.path.basename(os.path.abspath(self.folder))
        self.records: dict[str, list[dict[str, Any]]] = {}
        self._dirty: dict[str, set[int]] = {}
        if global_db_path is not None and is_new_experiment:
            self._check_new_experiment()

    # ------------------------------------------------------------------ memory
    def append(self, group: str, iteration: int, values: Mapping[str, Any]) -> None:
        """Add ``values`` to the row of ``group`` at ``iteration`` (merged with an existing row)."""
        rows = self.records.setdefault(group, [])
        row = next((r for r in reversed(rows) if r[ITERATION_KEY] == iteration), None)
        if row is None:
            row = {ITERATION_KEY: iteration}
            rows.append(row)
        row.update(values)
        self._dirty.setdefault(group, set()).add(iteration)

    def get_record(self, group: str) -> dict[str, list[Any]]:
        """The history of ``group`` as columns: ``{name: [value per row]}`` (None where missing)."""
        rows = self.records.get(group, [])
        columns = self._columns(rows)
        return {c: [r.get(c) for r in rows] for c in columns}

    @staticmethod
    def _columns(rows: list[dict[str, Any]]) -> list[str]:
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        return columns

    # ------------------------------------------------------------------ disk
    def save(self) -> None:
        """Write the CSV files of changed groups and upsert changed rows into SQLite."""
        if not self._dirty:
            return
        for group in self._dirty:
            self._write_csv(group)
        self._write_db(self.db_path, extra=None)
        if self.global_db_path is not None:
            self._write_db(self.global_db_path, extra=self.experiment_name)
        self._dirty.clear()

    def csv_path(self, group: str) -> str:
        return os.path.join(self.folder, f"{group}.csv")

    def _write_csv(self, group: str) -> None:
        rows = self.records[group]
        path = self.csv_path(group)
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns(rows))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)

    def _write_db(self, path: str, extra: str | None) -> None:
        con = sqlite3.connect(path)
        try:
            with con:
                for group, iterations in self._dirty.items():
                    rows = [r for r in self.records[group] if r[ITERATION_KEY] in iterations]
                    columns = self._columns(rows)
                    if extra is not None:
                        columns = ["experiment_name", *columns]
                    table = _quote(group)
                    con.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY)")
                    have = {c[1] for c in con.execute(f"PRAGMA table_info({table})")}
                    for c in columns:
                        if c not in have:
                            con.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(c)}")
                    for row in rows:
                        full = dict(row) if extra is None else {"experiment_name": extra, **row}
                        where = f"{_quote(ITERATION_KEY)} = ?"
                        key: list[Any] = [row[ITERATION_KEY]]
                        if extra is not None:
                            where += " AND experiment_name = ?"
                            key.append(extra)
                        con.execute(f"DELETE FROM {table} WHERE {where}", key)
                        names = ", ".join(_quote(c) for c in full)
                        marks = ", ".join("?" for _ in full)
                        con.execute(
                            f"INSERT INTO {table} ({names}) VALUES ({marks})", list(full.values())
                        )
        finally:
            con.close()

    def _check_new_experiment(self) -> None:
        path = self.global_db_path
        if path is None or not os.path.exists(path):
            return
        con = sqlite3.connect(path)
        try:
            tables = [
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for t in tables:
                cols = {c[1] for c in con.execute(f"PRAGMA table_info({_quote(t)})")}
                if "experiment_name" not in cols:
                    continue
                hit = con.execute(
                    f"SELECT 1 FROM {_quote(t)} WHERE experiment_name = ? LIMIT 1",
                    (self.experiment_name,),
                ).fetchone()
                if hit is not None:
                    fail(
                        _OWNER,
                        "a new experiment name in the global database",
                        f"{self.experiment_name!r}, which already has records in {t!r}",
                        fix="pass another experiment_name, or is_new_experiment=False to append",
                    )
        finally:
            con.close()

    def query(
        self, sql: str, values: tuple[Any, ...] = (), use_global_db: bool = False
    ) -> list[dict[str, Any]]:
        """Run a read query on the local (or global) database; rows as dicts."""
        path = self.global_db_path if use_global_db else self.db_path
        if path is None:
            fail(_OWNER, "a global database for use_global_db=True", "global_db_path=None")
        con = sqlite3.connect(path)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql, values)]
        finally:
            con.close()


def sqlite_obj_to_dict(sqlite_obj: list[Any]) -> dict[str, list[Any]]:
    """Rows of a query (``sqlite3.Row`` objects or dicts) as ``{column: [values]}``."""
    if not sqlite_obj:
        return {}
    columns = list(sqlite_obj[0].keys())
    return {c: [row[c] for row in sqlite_obj] for c in columns}
