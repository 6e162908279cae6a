from __future__ import annotations

from pathlib import Path

import pytest

from labd.rings import RingSizeError
from labd.rings.sizing import MIN_SLOTS, mem_available, plan_ring


def test_mem_available_reads_proc_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  1000 kB\nMemAvailable:    512 kB\n")
    assert mem_available(meminfo) == 512 * 1024
    assert mem_available() > 0


def test_a_ring_holds_the_time_asked_for_when_it_fits() -> None:
    plan = plan_ring(
        "s",
        retention_s=60,
        batches_per_second=10,
        expected_batch_bytes=1000,
        schema_length=300,
        max_bytes=1 << 30,
    )
    assert (plan.slot_count, plan.slot_size, plan.retention_s, plan.note) == (600, 4096, 60, None)


def test_a_ring_that_does_not_fit_holds_less_time_and_says_so() -> None:
    plan = plan_ring(
        "cam",
        retention_s=300,
        batches_per_second=100,
        expected_batch_bytes=8 << 20,
        schema_length=500,
        max_bytes=1 << 30,
    )
    assert plan.slot_count * plan.slot_size <= 1 << 30
    assert plan.note is not None and "cam" in plan.note and "instead of the 300 s" in plan.note
    with pytest.raises(RingSizeError, match=f"{MIN_SLOTS} slots of 8.0 MiB"):
        plan_ring(
            "cam",
            retention_s=300,
            batches_per_second=100,
            expected_batch_bytes=8 << 20,
            schema_length=500,
            max_bytes=16 << 20,
        )
    with pytest.raises(ValueError, match="must be positive"):
        plan_ring(
            "cam",
            retention_s=0,
            batches_per_second=100,
            expected_batch_bytes=1,
            schema_length=500,
            max_bytes=16 << 20,
        )
