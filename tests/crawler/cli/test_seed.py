"""``hermit seed``: seed URLs go through dedup; bad lines are rejected, counted and reported."""

from __future__ import annotations

from click.testing import CliRunner

from hermit.cli import main
from hermit.dedup.migrate import ScrapyRedisRequestFingerprinter
from hermit.keys import CrawlKeys
from hermit.queue.codec import decode_request
from hermit.queue.redis_queue import RedisRequestQueue

SEEDS = """\
# shop seeds
http://127.0.0.1:8000/a.html
https://127.0.0.1:8443/b.html

http://127.0.0.1:8000/a.html
ftp://127.0.0.1/file.txt
not a url
http://:80/
http://127.0.0.1:99999/port.html
/relative/path.html
"""


def invoke(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin)


def queued_urls(redis_url: str, crawl: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(redis_url)
    queue = RedisRequestQueue(client, CrawlKeys(crawl), worker_id="test")
    leases = queue.lease(100)
    client.close()
    return [decode_request(lease.entry, None, lease.priority).url for lease in leases]


def test_seeds_from_stdin_are_deduplicated_and_bad_lines_reported(redis_url):
    result = invoke("seed", "--redis", redis_url, "--crawl", "shop", stdin=SEEDS)
    assert result.exit_code == 1  # some lines were rejected
    assert "2 queued, 1 already seen, 5 rejected (crawl 'shop')" in result.output
    assert "line 6: 'ftp://127.0.0.1/file.txt': unsupported scheme 'ftp'" in result.output
    assert "line 7: 'not a url'" in result.output
    assert "line 8: 'http://:80/': no host" in result.output
    assert "line 9: 'http://127.0.0.1:99999/port.html': malformed URL" in result.output
    assert "line 10: '/relative/path.html': no scheme" in result.output
    assert sorted(queued_urls(redis_url, "shop")) == [
        "http://127.0.0.1:8000/a.html", "https://127.0.0.1:8443/b.html",
    ]


def test_seeding_again_queues_nothing_new(redis_url, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("http://127.0.0.1:8000/a.html\nhttp://127.0.0.1:8000/b.html\n")
    first = invoke("seed", str(seeds), "--redis", redis_url, "--crawl", "shop")
    second = invoke("seed", str(seeds), "--redis", redis_url, "--crawl", "shop")
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "2 queued, 0 already seen, 0 rejected" in first.output
    assert "0 queued, 2 already seen, 0 rejected" in second.output
    assert len(queued_urls(redis_url, "shop")) == 2


def test_seed_priority_is_kept(redis_url):
    result = invoke("seed", "--redis", redis_url, "--crawl", "shop", "--priority", "7",
                    "--url", "http://127.0.0.1:8000/p.html")
    assert result.exit_code == 0, result.output
    import redis

    client = redis.Redis.from_url(redis_url)
    lease = RedisRequestQueue(client, CrawlKeys("shop"), worker_id="test").lease(1)[0]
    assert lease.priority == 7


def test_fingerprinter_option_matches_fingerprints_migrated_from_scrapy_redis(redis_url, redis_client):
    from scrapy import Request

    from hermit.dedup.bloom import RedisBloomFilter

    url = "http://127.0.0.1:8000/old.html"
    migrated = ScrapyRedisRequestFingerprinter().fingerprint(Request(url))
    for crawl in ("plain", "migrated"):
        RedisBloomFilter(redis_client, CrawlKeys(crawl)).add_many([migrated])
    plain = invoke("seed", "--redis", redis_url, "--crawl", "plain", "--url", url)
    assert "1 queued, 0 already seen" in plain.output  # Scrapy's own fingerprint differs
    matched = invoke("seed", "--redis", redis_url, "--crawl", "migrated", "--url", url,
                     "--fingerprinter", "hermit.dedup.migrate.ScrapyRedisRequestFingerprinter")
    assert "0 queued, 1 already seen" in matched.output


def test_bad_fingerprinter_and_unreachable_redis_are_clear_errors(redis_url):
    bad = invoke("seed", "--redis", redis_url, "--crawl", "shop", "--url", "http://x/",
                 "--fingerprinter", "no.such.Module")
    assert bad.exit_code == 2
    assert "cannot load fingerprinter 'no.such.Module'" in bad.output
    down = invoke("seed", "--redis", "redis://127.0.0.1:9/0", "--crawl", "shop", "--url", "http://x/")
    assert down.exit_code == 1
    assert "cannot reach Redis at redis://127.0.0.1:9/0" in down.output
    assert down.exception is None or isinstance(down.exception, SystemExit)
