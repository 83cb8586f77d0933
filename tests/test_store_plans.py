"""The plan's worker count, read from its head when it stands there."""

import pytest

from greendots.errors import BadRunData
from greendots.store import Store


@pytest.mark.parametrize(
    "text, count",
    [
        ('{"worker_count": 7, "row_params": [], "groups": {}}', 7),
        ('{\n  "worker_count": 12,\n  "gro', 12),
        ('{"row_params": ["arch"], "worker_count": 2}', 2),
        ('{"groups": {"t": [{"params": {"worker_count": 99}}]}, "worker_count": 3}', 3),
        ('{"worker_count": 2.5}', None),
        ("{}", 0),
    ],
)
def test_plan_workers_head_or_whole_plan(tmp_path, text, count):
    (tmp_path / "plan.json").write_text(text)
    store = Store(str(tmp_path), max_workers=100)

    if count is None:
        with pytest.raises(BadRunData):
            store.plan_workers(str(tmp_path))
    else:
        assert store.plan_workers(str(tmp_path)) == count


def test_plan_workers_over_limit_from_head_is_an_error(tmp_path):
    (tmp_path / "plan.json").write_text('{"worker_count": 1000000000, "groups": {}}')

    with pytest.raises(BadRunData, match="over the limit of 100"):
        Store(str(tmp_path), max_workers=100).plan_workers(str(tmp_path))
