"""Named values a script reports with ``result_f64``, and their Arrow layout.

Results are published as one batch per run to the daemon's results stream, so a finished
scan's peak position sits beside the readings it came from, in the same rings and files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

RESULT_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.float64()),
        pa.field("run", pa.int64()),
        pa.field("script", pa.string()),
        pa.field("version", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("value", pa.float64()),
    ]
)


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    value: float
    timestamp: float


def results_to_batch(
    run_id: int, script: str, version: int, results: Sequence[Result]
) -> pa.RecordBatch:
    n = len(results)
    return pa.record_batch(
        [
            pa.array([r.timestamp for r in results], pa.float64()),
            pa.array([run_id] * n, pa.int64()),
            pa.array([script] * n, pa.string()),
            pa.array([version] * n, pa.int32()),
            pa.array([r.name for r in results], pa.string()),
            pa.array([r.value for r in results], pa.float64()),
        ],
        schema=RESULT_SCHEMA,
    )
