"""The items file of a local crawl: written as items come, once each, whatever stopped the last run."""

from __future__ import annotations

import json

import pytest
import redis

from hermit.keys import CrawlKeys
from hermit.local.items_file import ItemsFile
from hermit.local.state import ItemsCursor

KEYS = CrawlKeys("items")


def add(client: redis.Redis, *numbers: int) -> None:
    for n in numbers:
        client.xadd(KEYS.items, {"item": json.dumps({"n": n}).encode()})


def numbers(path) -> list[int]:
    return [json.loads(line)["n"] for line in path.read_text().splitlines()]


def test_items_are_appended_as_they_come_and_the_cursor_follows(redis_client, tmp_path):
    cursors: list[ItemsCursor] = []
    items = ItemsFile(tmp_path / "items.jsonl", on_cursor=lambda c: cursors.append(ItemsCursor(**vars(c))))
    items.open(None)
    add(redis_client, 0, 1, 2)
    assert items.catch_up(redis_client, KEYS) == 3
    assert items.catch_up(redis_client, KEYS) == 0  # nothing new: nothing written, no cursor
    add(redis_client, 3)
    assert items.catch_up(redis_client, KEYS) == 1
    items.close()
    assert numbers(tmp_path / "items.jsonl") == [0, 1, 2, 3]
    assert [c.items for c in cursors] == [3, 4]
    assert cursors[-1].size == (tmp_path / "items.jsonl").stat().st_size


def test_a_resumed_file_drops_lines_past_its_cursor_and_appends_the_rest_once(redis_client, tmp_path):
    path = tmp_path / "items.jsonl"
    saved: list[ItemsCursor] = []
    first = ItemsFile(path, on_cursor=lambda c: saved.append(ItemsCursor(**vars(c))))
    first.open(None)
    add(redis_client, 0, 1)
    first.catch_up(redis_client, KEYS)
    add(redis_client, 2, 3)
    first.catch_up(redis_client, KEYS)
    first.close()
    # A crash after lines 2 and 3 reached the file but before their cursor was saved.
    cursor = saved[0]
    add(redis_client, 4)
    second = ItemsFile(path)
    second.open(cursor)
    assert second.catch_up(redis_client, KEYS) == 3
    second.close()
    assert numbers(path) == [0, 1, 2, 3, 4]
    assert second.items == 5


def test_a_new_crawl_or_another_file_starts_from_the_first_item(redis_client, tmp_path):
    add(redis_client, 0, 1)
    (tmp_path / "items.jsonl").write_text('{"n": 99}\n')
    elsewhere = ItemsCursor(path=str(tmp_path / "other.jsonl"), last_id="0-1", size=10, items=1)
    for cursor in (None, elsewhere):
        items = ItemsFile(tmp_path / "items.jsonl")
        items.open(cursor)
        items.catch_up(redis_client, KEYS)
        items.close()
        assert numbers(tmp_path / "items.jsonl") == [0, 1]


def test_a_redis_error_mid_export_leaves_the_file_as_its_cursor_says(redis_client, redis_server, tmp_path):
    path = tmp_path / "items.jsonl"
    items = ItemsFile(path)
    items.open(None)
    add(redis_client, *range(30))
    items.catch_up(redis_client, KEYS)
    size = path.stat().st_size

    class FailingClient:
        """Answers one batch of the export, then loses Redis."""

        def __init__(self) -> None:
            self.calls = 0

        def xrange(self, *args, **kwargs):
            self.calls += 1
            if self.calls > 1:
                raise redis.ConnectionError("Redis went away")
            return redis_client.xrange(*args, **kwargs)

    add(redis_client, *range(30, 60))
    with pytest.raises(redis.ConnectionError):
        items.catch_up(FailingClient(), KEYS)
    assert path.stat().st_size == size
    assert items.catch_up(redis_client, KEYS) == 30
    items.close()
    assert numbers(path) == list(range(60))
