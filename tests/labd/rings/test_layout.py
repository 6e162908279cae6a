from __future__ import annotations

import pytest

from labd.rings.layout import stream_file_name, stream_from_file_name


@pytest.mark.parametrize("name", ["camera/frames", "a b/ü%2F", "..", "x" * 200, "/"])
def test_every_stream_name_maps_to_one_plain_file_name_and_back(name: str) -> None:
    file_name = stream_file_name(name)
    assert "/" not in file_name and file_name not in (".", "..")
    assert stream_from_file_name(file_name) == name


def test_stream_file_names_are_distinct() -> None:
    assert stream_file_name("a/b") != stream_file_name("a%2Fb")
