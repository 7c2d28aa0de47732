"""The asset core on a toy graph: order, lineage records, configs, blocking checks."""

import types

import pandas as pd
import pytest
from pydantic import BaseModel

from fruitops_core.assets import CheckResult, asset, asset_check, parquet
from fruitops_core.lake import LocalLake
from fruitops_core.materialize import materialize
from fruitops_core.records import KEEP_VERSIONS, AssetCheckFailed, MaterializationError, read_record
from fruitops_core.registry import AssetGraph, AssetGraphError


class NumbersConfig(BaseModel):
    n: int = 3


@asset("toy/numbers", io=parquet, config=NumbersConfig)
def numbers(ctx):
    return pd.DataFrame({"x": range(ctx.config.n)})


@asset("toy/total", deps=["toy/numbers"])
def total(ctx, numbers):
    ctx.add_metadata(total=int(numbers["x"].sum()))
    return {"total": int(numbers["x"].sum())}


@asset("toy/report", deps=["toy/total"])
def report(ctx, total):
    return {"text": f"total is {total['total']}"}


@asset_check("toy/total", blocking=True)
def total_is_small(ctx, value):
    return CheckResult(value["total"] < 100, f"total {value['total']} < 100")


def toy_graph() -> AssetGraph:
    module = types.ModuleType("toy_assets")
    module.__dict__.update(numbers=numbers, total=total, report=report, check=total_is_small)
    return AssetGraph.from_modules([module])


@pytest.fixture
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


def test_graph_order_and_selection():
    graph = toy_graph()
    assert graph.topological_order() == ["toy/numbers", "toy/total", "toy/report"]
    assert graph.select("toy/rep*") == ["toy/report"]
    assert graph.upstream_closure(["toy/report"]) == {"toy/numbers", "toy/total", "toy/report"}
    assert [c.name for c in graph["toy/total"].checks] == ["total_is_small"]
    with pytest.raises(AssetGraphError, match="no asset matches"):
        graph.select("nope/*")
    with pytest.raises(AssetGraphError, match="unknown asset 'toy/x'"):
        graph["toy/x"]


def test_cycles_and_missing_deps_are_rejected():
    a = asset("c/a", deps=["c/b"])(lambda ctx, b: 1)
    b = asset("c/b", deps=["c/a"])(lambda ctx, a: 1)
    module = types.ModuleType("m")
    module.__dict__.update(a=a, b=b)
    with pytest.raises(AssetGraphError, match="cycle"):
        AssetGraph.from_modules([module])
    module = types.ModuleType("m2")
    module.__dict__.update(a=a)
    with pytest.raises(AssetGraphError, match="unknown asset c/b"):
        AssetGraph.from_modules([module])


def test_function_must_take_its_upstream_values():
    with pytest.raises(TypeError, match="lacks parameters"):
        asset("t/x", deps=["t/up"])(lambda ctx: 1)


def test_materialize_writes_artifacts_and_lineage(settings, lake):
    graph = toy_graph()
    records = materialize(
        ["toy/report"],
        settings=settings,
        graph=graph,
        lake=lake,
        with_upstream=True,
        config={"toy/numbers": {"n": 5}},
        run_id="r1",
    )
    assert [r.asset_key for r in records] == ["toy/numbers", "toy/total", "toy/report"]
    numbers_rec, total_rec, report_rec = records
    assert lake.read_json("assets/toy/report/current/data.json") == {"text": "total is 10"}
    assert numbers_rec.metadata["rows"] == 5
    assert total_rec.metadata["total"] == 10
    assert total_rec.upstream == {"toy/numbers": numbers_rec.version}
    assert report_rec.upstream == {"toy/total": total_rec.version}
    assert total_rec.checks[0].passed and total_rec.checks[0].blocking
    assert report_rec.code_version.split("+")[1]  # source hash present
    stored = read_record(lake, graph["toy/total"])
    assert stored == total_rec
    assert lake.exists("assets/toy/total/history/r1.json")


def test_versions_change_only_with_content(settings, lake):
    graph = toy_graph()
    first = materialize(["toy/numbers"], settings=settings, graph=graph, lake=lake)[0]
    same = materialize(["toy/numbers"], settings=settings, graph=graph, lake=lake)[0]
    other = materialize(
        ["toy/numbers"], settings=settings, graph=graph, lake=lake, config={"toy/numbers": {"n": 4}}
    )[0]
    assert first.version == same.version != other.version


def test_missing_upstream_says_how_to_fix(settings, lake):
    with pytest.raises(MaterializationError, match="--with-upstream"):
        materialize(["toy/total"], settings=settings, graph=toy_graph(), lake=lake)


def test_failing_blocking_check_stops_downstream(settings, lake):
    graph = toy_graph()
    with pytest.raises(AssetCheckFailed, match="total_is_small"):
        materialize(
            ["toy/report"],
            settings=settings,
            graph=graph,
            lake=lake,
            with_upstream=True,
            config={"toy/numbers": {"n": 20}},
        )
    record = read_record(lake, graph["toy/total"])
    assert record is not None and not record.checks[0].passed  # kept for inspection
    assert not lake.exists("assets/toy/report/current/data.json")
    with pytest.raises(AssetCheckFailed, match="upstream toy/total failed"):
        materialize(["toy/report"], settings=settings, graph=graph, lake=lake)


def test_wrong_config_names_asset_and_field(settings, lake):
    graph = toy_graph()
    with pytest.raises(ValueError, match="toy/numbers.*n"):
        materialize(
            ["toy/numbers"],
            settings=settings,
            graph=graph,
            lake=lake,
            config={"toy/numbers": {"n": "many"}},
        )
    with pytest.raises(MaterializationError, match="unknown assets"):
        materialize(
            ["toy/numbers"], settings=settings, graph=graph, lake=lake, config={"toy/nope": {}}
        )


def test_installed_packages_register_the_pipeline():
    graph = AssetGraph.from_entry_points()
    order = graph.topological_order()
    for key in (
        "data/raw_images",
        "data/image_manifest",
        "models/trained_model",
        "models/champion_model",
        "serving/batch_predictions",
        "monitoring/drift_report",
    ):
        assert key in order
    assert order.index("data/image_manifest") < order.index("models/trained_model")
    assert order.index("models/champion_model") < order.index("serving/batch_predictions")


def _ran(records) -> list[str]:
    return [r.asset_key for r in records]


def test_with_upstream_runs_only_what_is_missing_or_stale(lake):
    graph = toy_graph()
    first = materialize(["toy/report"], graph=graph, lake=lake, with_upstream=True)
    assert _ran(first) == ["toy/numbers", "toy/total", "toy/report"]
    assert read_record(lake, graph["toy/numbers"]).config == {"n": 3}
    # fresh upstream is kept; the named asset itself always runs
    assert _ran(materialize(["toy/report"], graph=graph, lake=lake, with_upstream=True)) == [
        "toy/report"
    ]
    # the same value given explicitly is still fresh; another value makes it stale, and
    # the new upstream version makes everything downstream of it stale in turn
    same = {"toy/numbers": {"n": 3}}
    assert _ran(
        materialize(["toy/report"], graph=graph, lake=lake, with_upstream=True, config=same)
    ) == ["toy/report"]
    other = {"toy/numbers": {"n": 4}}
    assert _ran(
        materialize(["toy/report"], graph=graph, lake=lake, with_upstream=True, config=other)
    ) == ["toy/numbers", "toy/total", "toy/report"]
    assert load_total(lake, graph) == 6
    # not giving n again does not undo it; --force runs everything
    assert _ran(materialize(["toy/report"], graph=graph, lake=lake, with_upstream=True)) == [
        "toy/report"
    ]
    assert load_total(lake, graph) == 6
    forced = materialize(["toy/report"], graph=graph, lake=lake, with_upstream=True, force=True)
    assert _ran(forced) == ["toy/numbers", "toy/total", "toy/report"]


def load_total(lake, graph) -> int:
    from fruitops_core.records import load_value

    return load_value(lake, graph["toy/total"])["total"]


def test_an_upstream_made_again_with_a_new_value_makes_downstream_stale(lake):
    graph = toy_graph()
    materialize(["toy/total"], graph=graph, lake=lake, with_upstream=True)
    materialize(["toy/numbers"], graph=graph, lake=lake, config={"toy/numbers": {"n": 5}})
    assert _ran(materialize(["toy/report"], graph=graph, lake=lake, with_upstream=True)) == [
        "toy/total",
        "toy/report",
    ]
    assert load_total(lake, graph) == 10


def test_every_config_is_checked_before_anything_runs(lake):
    graph = toy_graph()
    with pytest.raises(ValueError, match="wrong config for asset toy/numbers: n"):
        materialize(
            ["toy/report"],
            graph=graph,
            lake=lake,
            with_upstream=True,
            config={"toy/numbers": {"n": "many"}},
        )
    assert read_record(lake, graph["toy/numbers"]) is None  # nothing ran


def test_a_setting_that_stands_for_config_counts_as_given(lake, tmp_path):
    from fruitops_core.settings import FruitOpsSettings

    class SourceConfig(BaseModel):
        source: str | None = None

    @asset("s/raw", config=SourceConfig, config_from_settings={"source": "source"})
    def raw(ctx):
        return {"source": ctx.config.source}

    module = types.ModuleType("s_assets")
    module.__dict__.update(raw=raw)
    graph = AssetGraph.from_modules([module])
    settings = FruitOpsSettings(home=tmp_path, source="/photos/a")
    (record,) = materialize(["s/raw"], graph=graph, lake=lake, settings=settings)
    assert record.config == {"source": "/photos/a"}
    explicit = {"s/raw": {"source": "/photos/b"}}  # given config wins over the setting
    (record,) = materialize(["s/raw"], graph=graph, lake=lake, settings=settings, config=explicit)
    assert record.config == {"source": "/photos/b"}


# --- versioned folders, the record as commit point, one writer per asset ------------------


def test_each_materialization_gets_its_own_folder_and_old_ones_go(settings, lake):
    graph = toy_graph()
    for n in range(1, 6):
        materialize(
            ["toy/numbers"],
            settings=settings,
            graph=graph,
            lake=lake,
            config={"toy/numbers": {"n": n}},
        )
    record = read_record(lake, graph["toy/numbers"])
    versions = lake.local_path("assets/toy/numbers/versions")
    kept = sorted(p.name for p in versions.iterdir())
    assert len(kept) == 1 + KEEP_VERSIONS
    assert record.artifact_path == f"assets/toy/numbers/versions/{kept[-1]}/data.parquet"
    current = lake.local_path("assets/toy/numbers/current")
    assert current.is_symlink() and current.resolve().name == kept[-1]
    assert len(pd.read_parquet(current / "data.parquet")) == 5
    assert len(list(lake.list("assets/toy/numbers/history"))) == 5


def test_a_reader_sees_the_committed_version_while_a_new_one_is_written(settings, lake):
    """Between the new artifact's write and its record (checks run there), a reader still
    gets the value the committed record names, whole."""
    from fruitops_core.records import load_value

    seen = {}

    @asset("rw/numbers", io=parquet, config=NumbersConfig)
    def rw_numbers(ctx):
        return pd.DataFrame({"x": range(ctx.config.n)})

    @asset_check("rw/numbers", blocking=False)
    def reader_meanwhile(ctx, value):
        if read_record(ctx.lake, graph["rw/numbers"]) is not None:
            seen["reader"] = len(load_value(ctx.lake, graph["rw/numbers"]))
            seen["writer"] = len(value)
        return CheckResult(True)

    module = types.ModuleType("rw_assets")
    module.__dict__.update(a=rw_numbers, c=reader_meanwhile)
    graph = AssetGraph.from_modules([module])
    with pytest.raises(MaterializationError, match="not been materialized"):
        load_value(lake, graph["rw/numbers"])
    for n in (2, 7):
        materialize(
            ["rw/numbers"],
            settings=settings,
            graph=graph,
            lake=lake,
            config={"rw/numbers": {"n": n}},
        )
    assert seen == {"reader": 2, "writer": 7}
    assert len(load_value(lake, graph["rw/numbers"])) == 7


@pytest.mark.parametrize("store", ["local", "s3"])
def test_two_runs_of_one_asset_never_interleave(settings, tmp_path, store, request, monkeypatch):
    """Two runs at once (two DAGs, or a retry beside a late first try): the second waits for
    the asset's lock, then runs; their spans do not overlap."""
    import threading
    import time

    import fruitops_core.lake_base as lake_module
    from fruitops_core.lake import lake_from_uri

    monkeypatch.setattr(lake_module, "LOCK_POLL_SECONDS", 0.05)
    if store == "local":
        shared = LocalLake(tmp_path / "lake")
    else:
        server = request.getfixturevalue("s3_server")
        shared = lake_from_uri(f"s3://{server.bucket}/{tmp_path.name}", server.endpoint)
    spans = []

    @asset("slow/value")
    def slow_value(ctx):
        start = time.monotonic()
        time.sleep(0.6)
        spans.append((start, time.monotonic(), ctx.run_id))
        return {"run": ctx.run_id}

    module = types.ModuleType("slow_assets")
    module.__dict__.update(a=slow_value)
    graph = AssetGraph.from_modules([module])
    errors = []

    def run(run_id):
        try:
            materialize(["slow/value"], settings=settings, graph=graph, lake=shared, run_id=run_id)
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    (a_start, a_end, _), (b_start, b_end, _) = sorted(spans)
    assert a_end <= b_start, "the second run started inside the first"
    assert read_record(shared, graph["slow/value"]).run_id == sorted(spans)[1][2]
    if store == "s3":
        assert not list(shared.list("locks")), "the lease object outlived its holder"


def test_a_lake_copied_without_its_links_still_takes_new_versions(settings, lake, tmp_path):
    """``cp -r`` turns ``current`` into a plain folder; the next materialization makes it a
    link to the committed version again."""
    import shutil

    graph = toy_graph()
    materialize(["toy/numbers"], settings=settings, graph=graph, lake=lake)
    copied = LocalLake(shutil.copytree(lake.root, tmp_path / "copied"))  # links followed
    assert not copied.local_path("assets/toy/numbers/current").is_symlink()
    materialize(
        ["toy/numbers"],
        settings=settings,
        graph=graph,
        lake=copied,
        config={"toy/numbers": {"n": 4}},
    )
    current = copied.local_path("assets/toy/numbers/current")
    assert current.is_symlink() and len(pd.read_parquet(current / "data.parquet")) == 4


def test_a_command_runs_an_asset_on_values_it_gives_and_stores_nothing(settings, lake):
    """`run_asset`: the asset's own function on inputs from outside the graph (as `fruitops
    score` runs the scoring asset on any folder); no record, so the graph's state is as it was."""
    from fruitops_core.materialize import run_asset
    from fruitops_core.resources import Resources

    graph = toy_graph()
    resources = Resources.of(settings, lake)
    given = pd.DataFrame({"x": [10, 20]})
    assert run_asset(graph["toy/total"], resources, {"numbers": given}) == {"total": 30}
    assert read_record(lake, graph["toy/total"]) is None
    assert not lake.exists("assets/toy/total")
    with pytest.raises(MaterializationError, match=r"takes the values of \['numbers'\]"):
        run_asset(graph["toy/total"], resources, {"total": given})
    with pytest.raises(ValueError, match="wrong config for asset toy/numbers: n:"):
        run_asset(graph["toy/numbers"], resources, {}, config={"n": "many"})


def test_an_asset_keeps_its_last_result_while_its_reuse_key_is_the_same(settings, lake):
    """Reuse is core's: the asset names what decides its result; `materialize` keeps the
    stored result (same version, ``reused``) without calling the function while that is the
    same, and runs it when it changes."""
    calls = []

    class Scale(BaseModel):
        factor: int = 2
        note: str = ""  # not part of what decides the result

    def decided_by(ctx, numbers):
        return {"factor": ctx.config.factor, "n": len(numbers)}

    @asset("toy/scaled", deps=["toy/numbers"], config=Scale, reuse_key=decided_by)
    def scaled(ctx, numbers):
        calls.append(ctx.config.factor)
        ctx.add_metadata(rows=len(numbers))
        return {"values": [int(x) * ctx.config.factor for x in numbers["x"]]}

    module = types.ModuleType("toy_reuse")
    module.__dict__.update(numbers=numbers, scaled=scaled)
    graph = AssetGraph.from_modules([module])
    run = {"settings": settings, "graph": graph, "lake": lake}
    (first,) = materialize(["toy/scaled"], with_upstream=True, **run)[-1:]
    assert first.metadata["reused"] is False and first.metadata["reuse_key"] == {
        "factor": 2,
        "n": 3,
    }
    (again,) = materialize(["toy/scaled"], config={"toy/scaled": {"note": "x"}}, **run)
    assert calls == [2]  # not called again
    assert again.metadata == {**first.metadata, "reused": True}
    assert again.version == first.version and again.run_id != first.run_id
    assert read_record(lake, graph["toy/scaled"]).config["note"] == "x"
    (changed,) = materialize(["toy/scaled"], config={"toy/scaled": {"factor": 3}}, **run)
    assert calls == [2, 3] and changed.metadata["reused"] is False
    from fruitops_core.records import load_value

    assert load_value(lake, graph["toy/scaled"]) == {"values": [0, 3, 6]}


def test_a_record_asset_hands_on_its_typed_value(settings, lake):
    """`record(Model)`: the value is checked when stored and comes back as the model
    downstream, from plain JSON in the lake."""
    from fruitops_core.assets import record
    from fruitops_core.records import load_value

    class Pick(BaseModel):
        name: str
        version: int

    @asset("toy/pick", io=record(Pick))
    def pick(ctx):
        return Pick(name="apple", version=3)

    @asset("toy/picked", deps=["toy/pick"])
    def picked(ctx, pick):
        return {"type": type(pick).__name__, "next": pick.version + 1}

    @asset("toy/untyped", io=record(Pick))
    def untyped(ctx):
        return {"name": "apple", "version": 3}

    module = types.ModuleType("toy_records")
    module.__dict__.update(pick=pick, picked=picked, untyped=untyped)
    graph = AssetGraph.from_modules([module])
    run = {"settings": settings, "graph": graph, "lake": lake}
    materialize(["toy/picked"], with_upstream=True, **run)
    assert load_value(lake, graph["toy/picked"]) == {"type": "Pick", "next": 4}
    assert lake.read_json("assets/toy/pick/current/data.json") == {"name": "apple", "version": 3}
    assert load_value(lake, graph["toy/pick"]) == Pick(name="apple", version=3)
    with pytest.raises(TypeError, match="must return a Pick"):
        materialize(["toy/untyped"], **run)
