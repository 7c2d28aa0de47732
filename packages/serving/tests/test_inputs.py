"""What `fruitops score` may read: a list of files is held to the rules of a folder's files."""

import os
from pathlib import Path

import pandas as pd
import pytest

from fruitops_core.lake import LakeError
from fruitops_core.safe_files import LINK_REASON, SPECIAL_REASON, OutsideAllowedRoots
from fruitops_serving.inputs import resolve_input


@pytest.fixture
def listed(tmp_path: Path) -> Path:
    """A folder with two photos, a FIFO, a 300 MiB (sparse) file, a link to a host file, and
    a CSV list naming all of them plus a path that climbs out of the folder."""
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8 a photo")
    (folder / "b.jpg").write_bytes(b"\xff\xd8 another")
    os.mkfifo(folder / "pipe.jpg")
    with open(folder / "huge.jpg", "wb") as handle:
        handle.truncate(300 * 1024**2)
    (tmp_path / "secret").write_text("host file")
    (folder / "link.jpg").symlink_to(tmp_path / "secret")
    rows = ["a.jpg", str(folder / "b.jpg"), "pipe.jpg", "huge.jpg", "link.jpg",
            "../../etc/hostname", "/etc/hostname"]  # fmt: skip
    pd.DataFrame({"path": rows}).to_csv(folder / "list.csv", index=False)
    return folder / "list.csv"


def test_a_list_takes_only_regular_files_inside_its_folder(listed: Path):
    source = resolve_input(str(listed))
    assert sorted(Path("/", k).name for k in source.keys) == ["a.jpg", "b.jpg"]
    reasons = {i["path"]: i["reason"] for i in source.ignored}
    assert reasons["pipe.jpg"] == SPECIAL_REASON
    assert "over the per-file limit" in reasons["huge.jpg"]
    assert reasons["link.jpg"] == LINK_REASON
    assert "leaves the list's folder" in reasons["../../etc/hostname"]
    assert "system folder" in reasons["/etc/hostname"]
    assert source.lake.read_bytes(source.keys[0]) == b"\xff\xd8 a photo"


def test_a_listed_file_swapped_for_a_link_after_listing_is_refused_when_read(listed: Path):
    source = resolve_input(str(listed))
    photo = next(k for k in source.keys if k.endswith("a.jpg"))
    target = Path("/", photo)
    target.unlink()
    target.symlink_to(listed.parent.parent / "secret")
    with pytest.raises(LakeError, match="symbolic link"):
        source.lake.read_bytes(photo)


def test_inputs_outside_the_allowed_roots_are_refused(listed: Path, tmp_path: Path):
    with pytest.raises(OutsideAllowedRoots, match="FRUITOPS_ALLOWED_ROOTS"):
        resolve_input(str(listed.parent), allowed_roots=[tmp_path / "elsewhere"])
    with pytest.raises(OutsideAllowedRoots, match="system folder"):
        resolve_input("/proc")
