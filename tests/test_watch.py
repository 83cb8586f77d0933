"""The per-run watcher shared by every long poll on a run."""

import asyncio
import os

import pytest

from greendots.watch import Watchers, changed_workers

from waiting import until


def test_changed_workers_longer_or_shorter_files_only():
    assert changed_workers([10, 10, 10, 0], [10, 12, 4, 0]) == [1, 2]


def sizes_of(run, count):
    return [os.path.getsize(run / f"status.{n}.jsonl") for n in range(count)]


@pytest.fixture
def run(tmp_path):
    for n in range(3):
        (tmp_path / f"status.{n}.jsonl").write_bytes(b"{}\n")
    return tmp_path


@pytest.mark.gen_test
async def test_many_waiters_share_one_stat_per_file_per_interval(run):
    watchers = Watchers(interval=0.05)
    watcher = watchers.for_run(str(run))
    offsets = sizes_of(run, 3)
    waits = [asyncio.ensure_future(watcher.wait(offsets, 5.0)) for _ in range(200)]
    while watcher.waiting() < 200:
        await asyncio.sleep(0.01)
    stats_before, ticks_before = watcher.stats, watcher.ticks

    await until(lambda: watcher.ticks >= ticks_before + 6)
    stats_idle = watcher.stats - stats_before
    ticks_idle = watcher.ticks - ticks_before
    with open(run / "status.1.jsonl", "ab") as f:
        f.write(b"{}\n")
    results = await asyncio.gather(*waits)

    assert results == [[1]] * 200
    # Three files, one stat each per interval, however many wait.
    assert stats_idle == 3 * ticks_idle
    assert len(watchers) == 0


@pytest.mark.gen_test
async def test_wait_times_out_with_empty_list_and_watcher_goes(run):
    watchers = Watchers(interval=0.02)

    result = await watchers.for_run(str(run)).wait(sizes_of(run, 3), 0.1)

    assert result == []
    assert len(watchers) == 0


@pytest.mark.gen_test
async def test_release_answers_waiters_empty(run):
    watchers = Watchers(interval=0.02)
    pending = asyncio.ensure_future(
        watchers.for_run(str(run)).wait(sizes_of(run, 3), 10)
    )
    while not len(watchers) or not watchers.for_run(str(run)).waiting():
        await asyncio.sleep(0.01)

    watchers.release_all()

    assert await asyncio.wait_for(pending, 1) == []
    assert len(watchers) == 0


@pytest.mark.gen_test
async def test_cancelled_wait_leaves_nothing(run):
    watchers = Watchers(interval=0.02)
    watcher = watchers.for_run(str(run))
    pending = asyncio.ensure_future(watcher.wait(sizes_of(run, 3), 10))
    while not watcher.waiting():
        await asyncio.sleep(0.01)

    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending

    await until(lambda: watcher.waiting() == 0 and len(watchers) == 0)


@pytest.mark.gen_test
async def test_missing_file_is_not_ready_until_written(tmp_path):
    watchers = Watchers(interval=0.02)
    watcher = watchers.for_run(str(tmp_path))
    pending = asyncio.ensure_future(watcher.wait([0], 5))
    await until(lambda: watcher.ticks >= 3)
    assert not pending.done()

    (tmp_path / "status.0.jsonl").write_bytes(b"{}\n")

    assert await asyncio.wait_for(pending, 2) == [0]


@pytest.mark.gen_test
async def test_offsets_newer_than_kept_sizes_do_not_wake(run):
    watchers = Watchers(interval=5.0)
    watcher = watchers.for_run(str(run))
    first = watcher.wait(sizes_of(run, 3), 10)
    with open(run / "status.1.jsonl", "ab") as f:
        f.write(b"{}\n")

    # A client that already read the new bytes asks with the new size.
    second = watcher.wait(sizes_of(run, 3), 10)

    assert not second.done()
    assert first.done() is False
    watchers.release_all()
    assert await first == [] and await second == []


@pytest.mark.gen_test
async def test_local_write_wakes_before_the_interval(run):
    watchers = Watchers(interval=60.0)
    pending = watchers.for_run(str(run)).wait(sizes_of(run, 3), 120)

    with open(run / "status.2.jsonl", "ab") as f:
        f.write(b"{}\n")

    # Without change events this would wait a whole minute for the next look.
    assert await asyncio.wait_for(pending, 5) == [2]
    await until(lambda: len(watchers) == 0)


@pytest.mark.gen_test
async def test_changes_to_other_files_do_not_wake(run):
    watchers = Watchers(interval=60.0)
    watcher = watchers.for_run(str(run))
    pending = watcher.wait(sizes_of(run, 3), 120)
    stats = watcher.stats

    (run / "test.log.jsonl").write_bytes(b"{}\n")
    with open(run / "status.0.jsonl", "ab") as f:
        f.write(b"{}\n")

    assert await asyncio.wait_for(pending, 5) == [0]
    assert watcher.stats == stats + 3  # one look at the three status files
