"""export_items against a real Redis stream: every item once, in order, from where the
last export stopped, the stream left as it was."""

from __future__ import annotations

import io
import json

from hermit.items.export import export_items
from hermit.keys import CrawlKeys


def test_an_export_goes_on_from_the_last_id_it_returned(redis_client):
    keys = CrawlKeys("shop")
    for i in range(25):
        redis_client.xadd(keys.items, {"item": json.dumps({"n": i}).encode()})
    first, progress = io.BytesIO(), []
    written, last = export_items(redis_client, keys, first, batch_size=10, on_progress=progress.append)
    assert (written, progress) == (25, [10, 20, 25])
    for i in range(25, 30):
        redis_client.xadd(keys.items, {"item": json.dumps({"n": i}).encode()})
    rest = io.BytesIO()
    assert export_items(redis_client, keys, rest, after=last)[0] == 5
    lines = (first.getvalue() + rest.getvalue()).splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(30))
    assert redis_client.xlen(keys.items) == 30
    assert export_items(redis_client, keys, io.BytesIO(), after=export_items(
        redis_client, keys, io.BytesIO())[1]) == (0, None)
