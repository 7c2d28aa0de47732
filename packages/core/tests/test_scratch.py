import os
import stat
import tempfile
from pathlib import Path

import pytest

from fruitops_core.scratch import ScratchError, user_scratch


@pytest.fixture
def tmpdir_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / f"fruitops-{os.getuid()}"


def test_the_scratch_folder_is_this_users_alone(tmpdir_root: Path):
    folder = user_scratch("tables")
    assert folder == tmpdir_root / "tables" and folder.is_dir()
    assert stat.S_IMODE(tmpdir_root.stat().st_mode) == 0o700
    assert user_scratch("tables") == folder  # kept between runs


def test_a_folder_others_can_write_is_refused(tmpdir_root: Path):
    tmpdir_root.mkdir(mode=0o700)
    tmpdir_root.chmod(0o777)  # planted by someone else, or widened
    with pytest.raises(ScratchError, match="not a private folder.*set TMPDIR"):
        user_scratch("tables")


def test_a_link_in_its_place_is_refused(tmpdir_root: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    tmpdir_root.symlink_to(elsewhere)
    with pytest.raises(ScratchError):
        user_scratch("cache")
    assert not (elsewhere / "cache").exists()


def test_a_folder_of_another_owner_is_refused(tmpdir_root: Path):
    tmpdir_root.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(tmpdir_root, 65534, 65534)
        with pytest.raises(ScratchError, match="owner uid 65534"):
            user_scratch("tables")
    else:  # only root can give a folder away: the other-owner case is the mode case here
        tmpdir_root.chmod(0o755)
        with pytest.raises(ScratchError):
            user_scratch("tables")
