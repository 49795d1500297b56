"""Move a crawl queued in the one-queue layout (before host-aware queues) into per-host queues.

The old layout kept one LIST per priority (``queue:<priority>``) and a ZSET of those
priorities, and lease values ``'<priority> <entry>'``. :func:`migrate_layout` moves
every entry, in order, to its host's queue (the host read from the entry's URL, or
its ``download_slot``), and returns old leases to the queue first, so nothing is
lost; entries it can't read go to the dead letters. It refuses while workers are
alive (they would lease from the old keys), and works in batches, so a large queue
is moved without holding Redis for long. Dedup is untouched: the Bloom filter
stays as it is, and moved requests are not checked against it again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import redis

from hermit.keys import CrawlKeys
from hermit.queue.codec import UndecodableEntry, decode_request
from hermit.queue.hosts import politeness_key
from hermit.queue.redis_queue import QueuedRequest, RedisRequestQueue

logger = logging.getLogger(__name__)


class LiveWorkers(RuntimeError):
    """Workers still hold live leases on the crawl: stop them before migrating."""


@dataclass
class MigrationReport:
    moved: int = 0
    leases_returned: int = 0
    dead_lettered: int = 0


def migrate_layout(client: redis.Redis, keys: CrawlKeys, *, batch: int = 1000) -> MigrationReport:
    """Move every request of the old layout into per-host queues; see the module docstring."""
    now_ms = int(time.time() * 1000)
    alive = client.zrangebyscore(keys.workers, now_ms, "+inf")
    if alive:
        raise LiveWorkers(f"{len(alive)} worker(s) of crawl {keys.crawl!r} are alive; stop them first")
    report = MigrationReport()
    # Old leases first: they were taken before anything still queued.
    for worker in client.zrange(keys.workers, 0, -1):
        lease_key = keys.leases(worker.decode())
        for lease_id, value in client.hgetall(lease_key).items():
            priority, _, entry = value.partition(b" ")
            if not entry.startswith(b"{"):
                continue  # a host-aware lease ('<priority> <host>\n<entry>'): the old entries are JSON
            client.lpush(keys.legacy_queue(int(priority)), entry)
            client.zadd(keys.legacy_priorities, {priority.decode(): int(priority)})
            client.hdel(lease_key, lease_id)
            report.leases_returned += 1
        client.zrem(keys.workers, worker)
    queue = RedisRequestQueue(client, keys, "migration")
    for priority in [int(p) for p in client.zrevrange(keys.legacy_priorities, 0, -1)]:
        source = keys.legacy_queue(priority)
        while True:
            # Read a batch, push it to its hosts, then trim it: a crash in between
            # repeats the batch (at-least-once), never loses it.
            entries = client.lrange(source, 0, batch - 1)
            if not entries:
                break
            pushes = []
            for entry in entries:
                try:
                    host = politeness_key(decode_request(entry, None, priority))
                except UndecodableEntry as exc:
                    client.lpush(keys.dead_letters, json.dumps({
                        "reason": f"layout migration: {exc}", "priority": priority,
                        "entry": entry.decode("utf-8", errors="backslashreplace")}))
                    client.hincrby(keys.stats, "dead_letters", 1)
                    report.dead_lettered += 1
                    continue
                pushes.append(QueuedRequest(entry, priority, None, host))
            queue.push_many(pushes)
            client.ltrim(source, len(entries), -1)
            report.moved += len(pushes)
        client.zrem(keys.legacy_priorities, priority)
    client.delete(keys.legacy_priorities)
    logger.info("Moved %d requests to per-host queues (%d leases returned first, %d dead-lettered)",
                report.moved, report.leases_returned, report.dead_lettered)
    return report
