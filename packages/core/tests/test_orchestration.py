"""What a task hands Airflow's XCom: `compact` values."""

from pydantic import BaseModel

from fruitops_core.orchestration import compact


class Inner(BaseModel):
    name: str
    scores: list[float]


class Outer(BaseModel):
    items: list[Inner]
    total: int


def test_a_typed_record_goes_as_its_json():
    value = Outer(items=[Inner(name="lite0", scores=[0.9, 0.8])], total=1)
    assert compact(value) == {"items": [{"name": "lite0", "scores": [0.9, 0.8]}], "total": 1}


def test_long_lists_become_counts_and_other_objects_their_text():
    assert compact({"rows": list(range(20)), "path": object}) == {
        "rows": "[20 items]",
        "path": str(object),
    }
