"""Writing outputs: atomic, readable by collaborators, and removing only what was written."""

import logging
import os
import stat

import pytest

from pcnacycle.errors import PcnacycleError
from pcnacycle.io import quieter, read_manifest, remove_outputs, write_json, write_text


def test_atomic_files_get_the_mode_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_remove_outputs_touches_only_listed_files_inside_the_folder(tmp_path):
    folder = tmp_path / "run"
    (folder / "ctc").mkdir(parents=True)
    (folder / "ctc" / "mask000.tif").write_text("ours")
    (folder / "ctc" / "notes.txt").write_text("theirs")
    (folder / "masks.tif").write_text("ours")
    (folder / "only").mkdir()
    (folder / "only" / "ours.csv").write_text("ours")
    (tmp_path / "outside.txt").write_text("not in the folder")
    write_json(folder / "run.json", {"outputs": ["ctc/mask000.tif", "masks.tif", "only/ours.csv", "run.json",
                                                 "../outside.txt", "ctc"]})
    removed = remove_outputs(folder, read_manifest(folder, "run.json"))
    assert removed == 4
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["ctc", "ctc/notes.txt"]
    assert (tmp_path / "outside.txt").is_file()


def test_read_manifest_refuses_a_marker_it_did_not_write(tmp_path):
    (tmp_path / "run.json").write_text("")
    with pytest.raises(PcnacycleError, match="refusing to overwrite"):
        read_manifest(tmp_path, "run.json")
    (tmp_path / "run.json").write_text('{"frames": 3}')  # an older run: its known outputs
    (tmp_path / "masks.tif").write_text("ours")
    (tmp_path / "thesis.docx").write_text("theirs")
    assert read_manifest(tmp_path, "run.json", legacy=("masks.tif", "*.csv")) == ["masks.tif", "run.json"]


def test_quieter_drops_lower_lines_only_inside_the_block_and_restores_the_level(caplog):
    logger = logging.getLogger("pcnacycle.test_quieter")
    logger.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="pcnacycle.test_quieter"):
        with pytest.raises(RuntimeError), quieter("pcnacycle.test_quieter", logging.WARNING):
            logger.info("dropped")
            logger.warning("kept")
            raise RuntimeError("the level comes back even so")
        logger.info("after")
    assert [r.getMessage() for r in caplog.records] == ["kept", "after"]
    assert logger.level == logging.INFO
    with quieter("pcnacycle.test_quieter", logging.DEBUG):  # never lowers a level
        assert logger.level == logging.INFO
