"""``hermit crawl`` run as a user runs it: a subprocess, its summary and its items file."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit


def item_urls(path: Path) -> list[str]:
    return [json.loads(line)["url"] for line in path.read_text().splitlines()]


def test_crawl_of_the_embedded_demo_site_finds_every_page(tmp_path, hermit_cli, demo_items):
    # What `make demo` runs, twice: a finished crawl keeps no state, so the second
    # run crawls the whole site again, as the first did.
    for _ in range(2):
        proc = hermit_cli("crawl", "--workers", "2", "--pages", "150", "--log-dir", "logs", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        items = demo_items(tmp_path / "items.jsonl", 150)
        assert urlsplit(items.urls[0]).hostname == "127.0.0.1"
        assert not items.lost and not items.unexpected and items.duplicates == 0
        assert "(resumed)" not in proc.stdout
        assert not (tmp_path / ".hermit").exists()
    out, expected = Path("items.jsonl"), items.expected
    assert f"items file        {out} ({len(expected)} items)" in proc.stdout
    assert "left in queue     0  (leased 0)" in proc.stdout
    assert "dead letters      0" in proc.stdout
    assert "peak worker RSS   w0 " in proc.stdout
    assert (tmp_path / "logs" / "worker-1.log").exists()


def test_crawl_from_seed_urls_on_a_shared_redis(tmp_path, redis_url, demo_site, hermit_cli):
    out = tmp_path / "items.jsonl"
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"{demo_site.url}\nmailto:someone@example.invalid\n")
    proc = hermit_cli("crawl", "--redis", redis_url, "--crawl", "seeded", "--seeds", str(seeds), "-o", str(out),
                      cwd=tmp_path)
    # The bad seed is reported and makes the exit status 1, but the crawl still ran.
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 queued, 0 already seen, 1 rejected" in proc.stdout
    assert "rejected line 2: 'mailto:someone@example.invalid'" in proc.stdout
    expected = demo_site.site.expected_urls(demo_site.url)
    assert sorted(item_urls(out)) == sorted(expected)


def test_crawl_with_no_valid_seed_is_one_clear_error(tmp_path, redis_url, hermit_cli):
    proc = hermit_cli("crawl", "--redis", redis_url, "--url", "not-a-url", "-o", str(tmp_path / "x.jsonl"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "Error: none of the 1 seed URLs is valid" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_command_has_help(hermit_cli):
    for command in (["crawl"], ["worker"], ["seed"], ["status"], ["items", "export"],
                    ["dedup", "migrate"], ["demo-site"]):
        proc = hermit_cli(*command, "--help")
        assert proc.returncode == 0, (command, proc.stderr)
        assert "Usage:" in proc.stdout and "--help" in proc.stdout, command


PROJECT_SPIDER = '''
import scrapy


class ListingSpider(scrapy.Spider):
    name = "listing"

    async def start(self):
        yield scrapy.Request(self.url)

    def parse(self, response):
        yield {"url": response.url}
        for href in response.css("a::attr(href)").getall():
            url = response.urljoin(href).split("#")[0].split("?")[0]
            if url.startswith(self.url + "p/"):
                yield scrapy.Request(url)
'''


def test_crawl_runs_a_spider_of_the_users_project(tmp_path, demo_site, hermit_cli, scrapy_project):
    project = scrapy_project("listing", {"spiders/listing.py": PROJECT_SPIDER})
    out = tmp_path / "items.jsonl"
    proc = hermit_cli("crawl", "listing", "--workers", "2", "-a", f"url={demo_site.url}", "-o", str(out),
                      cwd=project.root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = {f"{demo_site.url}"} | {f"{demo_site.url}p/{n}.html" for n in range(demo_site.site.pages)}
    urls = item_urls(out)
    assert set(urls) == expected and len(urls) == len(expected)
    assert "crawl 'listing' ended" in proc.stdout
    assert not (project.root / ".hermit").exists()
