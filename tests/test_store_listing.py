"""The cached project and run listings always equal what a fresh Store lists."""

import os
import shutil
import time

import pytest

import greendots.store
from greendots.store import Store

# Far enough back that the listing cache trusts every time stamp in the tree.
LONG_AGO = 7 * 86400


def age_tree(root, seconds_ago):
    """Date every file and folder under ``root`` back by ``seconds_ago``."""
    then = time.time() - seconds_ago
    for parent, folders, files in os.walk(root):
        for name in folders + files:
            os.utime(os.path.join(parent, name), (then, then))
    os.utime(root, (then, then))


def backdate(*paths, seconds_ago=LONG_AGO - 100):
    """Give ``paths`` an old time that still differs from the aged tree's."""
    then = time.time() - seconds_ago
    for path in paths:
        os.utime(path, (then, then))


def listings(store, root, now):
    """Everything a client can list, as ``store`` lists it.

    The newest run alone comes first: a run the cache missed would be shown
    (and so looked at again) by the longer listings.
    """
    projects = [store.list_projects(1, now=now), store.list_projects(1000, now=now)]
    runs = {p: store.list_runs(p, now=now) for p in sorted(os.listdir(root))}
    return projects, runs


@pytest.fixture
def warm(runs_dir):
    """A store whose cache has listed the (aged) runs directory once."""
    age_tree(runs_dir, LONG_AGO)
    store = Store(str(runs_dir), 64)
    listings(store, runs_dir, time.time())
    return store


def assert_fresh(store, root):
    now = time.time()
    assert listings(store, root, now) == listings(Store(str(root), 64), root, now)


@pytest.mark.parametrize("settled", [False, True])
def test_listing_after_adding_run_equals_fresh_store(warm, runs_dir, settled):
    run = runs_dir / "webshop" / "rerun-2026-12-02"
    run.mkdir()
    (run / "plan.json").write_text('{"worker_count": 1, "groups": {}}')
    (run / "metadata.toml").write_text('name = "Rerun"\n')
    if settled:
        backdate(run / "plan.json", run / "metadata.toml", run, run.parent)

    assert_fresh(warm, runs_dir)
    assert "Rerun" in [r["name"] for r in warm.list_runs("webshop")]


@pytest.mark.parametrize("settled", [False, True])
def test_listing_after_removing_run_equals_fresh_store(warm, runs_dir, settled):
    shutil.rmtree(runs_dir / "webshop" / "live-2026-12-01")
    if settled:
        backdate(runs_dir / "webshop")

    assert_fresh(warm, runs_dir)
    assert "live-2026-12-01" not in [r["id"] for r in warm.list_runs("webshop")]


@pytest.mark.parametrize("settled", [False, True])
def test_listing_after_plan_appears_equals_fresh_store(warm, runs_dir, settled):
    run = runs_dir / "webshop" / "collecting-2026-12-01"
    (run / "plan.json").write_text('{"worker_count": 1, "groups": {}}')
    if settled:
        backdate(run / "plan.json", run, seconds_ago=60)

    assert_fresh(warm, runs_dir)
    assert warm.list_runs("webshop", 1)[0]["id"] == "collecting-2026-12-01"


@pytest.mark.parametrize("settled", [False, True])
def test_listing_after_metadata_rewritten_in_place_equals_fresh_store(
    warm, runs_dir, settled
):
    metadata = runs_dir / "compiler" / "build-1041" / "metadata.toml"
    metadata.write_text('name = "Build 1041, renamed"\n')
    (runs_dir / "webshop" / "metadata.toml").write_text('name = "Shop"\n')
    if settled:
        backdate(metadata, runs_dir / "webshop" / "metadata.toml")

    assert_fresh(warm, runs_dir)
    names = [r["name"] for r in warm.list_runs("compiler")]
    assert "Build 1041, renamed" in names


def test_listing_after_run_made_again_under_same_name_equals_fresh_store(
    warm, runs_dir
):
    run = runs_dir / "compiler" / "build-1041"
    shutil.rmtree(run)
    run.mkdir()

    assert_fresh(warm, runs_dir)


def test_listing_after_project_removed_equals_fresh_store(warm, runs_dir):
    shutil.rmtree(runs_dir / "compiler")

    assert_fresh(warm, runs_dir)


def test_listing_warm_settled_tree_parses_and_scans_nothing(
    warm, runs_dir, monkeypatch
):
    calls = []
    monkeypatch.setattr(greendots.store, "read_metadata", calls.append)
    scan = Store._subdirs
    monkeypatch.setattr(
        Store, "_subdirs", staticmethod(lambda d: calls.append(d) or scan(d))
    )

    warm.list_projects(1000)
    warm.list_runs("webshop")

    assert calls == [warm.root]  # only the root, which tells what projects exist


def test_listing_cache_holds_at_most_projects_cached(runs_dir, monkeypatch):
    monkeypatch.setattr(greendots.store, "PROJECTS_CACHED", 1)
    store = Store(str(runs_dir), 64)

    projects = store.list_projects(10)

    assert len(projects) == 2
    assert len(store._listings) == 1
