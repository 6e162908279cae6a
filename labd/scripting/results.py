"""What a script reports: named values (``result_f64``) and rows of a table (``result_row``).

Both are published as one batch per run to the daemon's results stream, in one long
format (:data:`RESULT_SCHEMA`): a scalar is a row with ``row`` null; a table's row ``i``
is one entry per column with ``row = i``. The stream keeps one fixed schema whatever the
scripts report, and a run's table is the pivot of its entries with a ``row`` (what
clients get as Arrow from ``run.table()``, docs/scripting.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

RESULT_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.float64()),
        pa.field("run", pa.int64()),
        pa.field("script", pa.string()),
        pa.field("version", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("row", pa.int64()),
    ]
)
"""``row``: null for a named value, the row's number (from 0) for a column of a table row."""


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    value: float
    timestamp: float


class ColumnsMismatch(ValueError):
    """A row whose columns differ from the table's (fixed by its first row)."""


@dataclass
class Table:
    """The rows a run emitted: the first row fixes the columns, every later row has them."""

    columns: tuple[str, ...] = ()
    rows: list[tuple[float, ...]] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)

    def append(self, columns: tuple[str, ...], values: tuple[float, ...], timestamp: float) -> int:
        """Add a row; returns its number. Raises :class:`ColumnsMismatch`."""
        if not self.rows:
            self.columns = columns
        elif columns != self.columns:
            raise ColumnsMismatch(
                f"row {len(self.rows)} has columns {','.join(columns)}, but the table's are"
                f" {','.join(self.columns)} (fixed by its first row); emit every column in"
                " the same order in each row"
            )
        self.rows.append(values)
        self.timestamps.append(timestamp)
        return len(self.rows) - 1

    def to_arrow(self) -> pa.Table:
        """One float64 column per name, one row per ``result_row`` call."""
        rows = list(self.rows)  # the guest thread may append meanwhile
        return pa.table(
            {
                name: pa.array([r[i] for r in rows], pa.float64())
                for i, name in enumerate(self.columns)
            }
        )


def results_to_batch(
    run_id: int, script: str, version: int, results: Sequence[Result], table: Table | None = None
) -> pa.RecordBatch:
    timestamps = [r.timestamp for r in results]
    names = [r.name for r in results]
    values = [r.value for r in results]
    row_numbers: list[int | None] = [None] * len(results)
    if table is not None:
        for number, (t, row) in enumerate(zip(table.timestamps, table.rows, strict=True)):
            timestamps += [t] * len(row)
            names += table.columns
            values += row
            row_numbers += [number] * len(row)
    n = len(names)
    return pa.record_batch(
        [
            pa.array(timestamps, pa.float64()),
            pa.array([run_id] * n, pa.int64()),
            pa.array([script] * n, pa.string()),
            pa.array([version] * n, pa.int32()),
            pa.array(names, pa.string()),
            pa.array(values, pa.float64()),
            pa.array(row_numbers, pa.int64()),
        ],
        schema=RESULT_SCHEMA,
    )
