"""The console finds a board's photo where the agent filed it, from the journal's record alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge_agent.console.images import BoardImages, ImageUnavailable
from edge_agent.contracts.config import StationConfig
from edge_agent.contracts.verdict import new_result_id
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.inputs.filing import finish


def _record(path: Path, data: bytes, result_id: str) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    return {"result_id": result_id, "source_path": str(path), "source_sha256": sha}


def test_a_filed_photo_is_found_by_its_result_id_and_checked_by_its_sha256(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop" / "cam1"
    drop.mkdir(parents=True)
    config = StationConfig(inputs={"drop_folders": {"cam1": drop}}, paths={"state": tmp_path})
    images = BoardImages(config)
    records = []
    for outcome, data in (("processed", b"board"), ("failed", b"bad board")):
        path, result_id = drop / "SN1.png", new_result_id()
        path.write_bytes(data)
        filed = finish(DropFile("cam1", path, "00", data), outcome, result_id)
        records.append((_record(path, data, result_id), filed))
    legacy = drop / "processed" / "SN2.png"  # filed flat by an older version
    legacy.write_bytes(b"old board")

    for record, filed in records:
        assert images.photo_path(record) == filed
    assert images.photo_path(_record(drop / "SN2.png", b"old board", new_result_id())) == legacy
    with pytest.raises(ImageUnavailable, match="no longer on disk"):
        images.photo_path(_record(drop / "SN1.png", b"other content", records[0][0]["result_id"]))
