"""The demo site: a deterministic link graph where every page is reachable, and traps served over real HTTP."""

from __future__ import annotations

import collections
import http.client
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest
from w3lib.url import url_query_cleaner

from hermit.demo.process import DemoSiteProcess
from hermit.demo.site import (
    CALENDAR_ENTRANCE_MONTH,
    DemoSite,
    calendar_month,
    calendar_path,
    calendar_window,
    content_path,
)

HOST = "demo.test:8080"
BASE = f"http://{HOST}/"
HREF = re.compile(rb'<a href="([^"]*)"')
TITLE = re.compile(rb"<title>([^<]*)</title>")


def hrefs(body: bytes) -> list[str]:
    return [unescape(href.decode()) for href in HREF.findall(body)]


def resolved_path(page_path: str, href: str) -> str:
    """Where a link leads, as a crawler that strips session ids and fragments sees it."""
    return urlsplit(url_query_cleaner(urljoin(BASE.rstrip("/") + page_path, href), ("sid",), remove=True)).path


def crawl_model(site: DemoSite) -> set[str]:
    """A breadth-first crawl of the model, following links as the demo spider does."""
    window = calendar_window(site.calendar_months)
    seen = {"/"}
    found: set[str] = set()
    queue = collections.deque(["/"])
    while queue:
        path = queue.popleft()
        page = site.render(path, HOST)
        if page.status != 200:
            continue
        found.add(path)
        for target, _ in site.links(path, HOST):
            month = calendar_month(target)
            if target not in seen and (month is None or month in window):
                seen.add(target)
                queue.append(target)
    return found


# -- the model --------------------------------------------------------------------------------


def test_same_parameters_give_the_same_pages_byte_for_byte():
    paths = ["/", "/p/0.html", "/p/17.html", "/p/2999.html", "/calendar/2026/05.html", "/huge.html", "/x"]
    first, second = DemoSite(huge_bytes=50_000), DemoSite(huge_bytes=50_000)
    assert [first.render(p, HOST) for p in paths] == [second.render(p, HOST) for p in paths]
    reseeded = DemoSite(seed=1)
    assert first.render("/p/17.html", HOST).body != reseeded.render("/p/17.html", HOST).body


@pytest.mark.parametrize("path", ["/", "/p/0.html", "/p/1.html", "/p/123.html", "/p/2999.html",
                                  "/calendar/2026/01.html", "/calendar/2026/12.html", "/slow.html", "/huge.html"])
def test_the_html_links_are_the_link_model(path):
    site = DemoSite(huge_bytes=20_000)
    body = site.render(path, HOST).body
    assert [resolved_path(path, href) for href in hrefs(body)] == [target for target, _ in site.links(path, HOST)]
    assert [href for _, href in site.links(path, HOST)] == hrefs(body)


def test_pages_have_a_title_and_about_links_per_page_links():
    site = DemoSite(links_per_page=20)
    for page in range(0, 3000, 97):
        body = site.render(content_path(page), HOST).body
        assert TITLE.search(body).group(1) == f"Page {page}".encode()
        assert 20 <= len(hrefs(body)) <= 21
    assert TITLE.search(site.render("/calendar/2027/03.html", HOST).body).group(1) == b"Calendar 2027/03"


def test_links_are_spelled_every_way_and_repeat_pages():
    site = DemoSite()
    spellings = collections.Counter()
    targets = collections.Counter()
    for page in range(200):
        for target, href in site.links(content_path(page), HOST):
            targets[target] += 1
            if href.startswith(f"http://{HOST}/"):
                spellings["absolute"] += 1
            elif href.startswith("../"):
                spellings["dot-dot"] += 1
            elif href.startswith("/"):
                spellings["root-relative"] += 1
            else:
                spellings["relative"] += 1
            spellings["fragment"] += "#" in href
            spellings["sid"] += "?sid=" in href
    assert all(spellings[kind] > 100 for kind in ("absolute", "dot-dot", "root-relative", "relative", "sid"))
    assert spellings["fragment"] > 50
    assert targets["/"] == 200 and max(targets.values()) > 1


def test_absolute_links_use_the_request_host():
    body = DemoSite().render("/", "other.example:1234").body
    assert "http://other.example:1234/huge.html" in hrefs(body)
    hostile = DemoSite().render("/", 'x"><script>').body
    assert b"<script>" not in hostile


def test_session_ids_differ_by_referring_page_but_lead_to_the_same_pages():
    site = DemoSite()
    tokens: dict[int, set[str]] = {}
    for page in range(100):
        tokens[page] = {href.split("?sid=")[1].split("#")[0]
                        for _, href in site.links(content_path(page), HOST) if "?sid=" in href}
    with_sid = [page for page in tokens if tokens[page]]
    assert len(with_sid) > 80
    assert all(len(tokens[page]) == 1 for page in with_sid)  # one session per referring page
    assert len({next(iter(tokens[page])) for page in with_sid}) == len(with_sid)
    assert "?sid=" in "".join(href for _, href in site.links("/", HOST))


@pytest.mark.parametrize("pages", [1, 2, 7, 300, 3000])
def test_a_spider_like_crawl_of_the_model_finds_exactly_the_expected_pages(pages):
    site = DemoSite(pages=pages, huge_bytes=1000, calendar_months=5)
    found = crawl_model(site)
    root = BASE.rstrip("/")
    assert {root + path for path in found} == site.expected_urls(BASE)
    assert len(site.expected_urls(BASE)) == pages + 3 + 5


@pytest.mark.parametrize("links_per_page", [0, 3, 20, 60])
def test_every_page_is_reachable_whatever_the_link_count(links_per_page):
    site = DemoSite(pages=500, links_per_page=links_per_page, calendar_months=0)
    assert len(crawl_model(site)) == 500 + 3


def test_a_million_pages_are_reachable_and_rendered_on_the_fly():
    site = DemoSite(pages=1_000_000)
    assert "/p/0.html" in [target for target, _ in site.links("/", HOST)]
    rng = random.Random(7)
    started = time.perf_counter()
    samples = [rng.randrange(1_000_000) for _ in range(300)] + [999_999]
    for page in samples:
        # Walk up to page 0; each step checks the parent really links its child.
        while page != 0:
            parent = site.parent(page)
            assert content_path(page) in [target for target, _ in site.links(content_path(parent), HOST)]
            page = parent
    assert site.render("/p/999999.html", HOST).status == 200
    assert site.render("/p/1000000.html", HOST).status == 404
    # A few thousand renders in well under a second: nothing precomputed, nothing slow.
    assert time.perf_counter() - started < 5


def test_random_links_reach_the_whole_site():
    site = DemoSite(pages=1_000_000)
    targets = [target for page in range(200) for target, _ in site.links(content_path(page), HOST)]
    assert max(int(t[3:-5]) for t in targets if t.startswith("/p/")) > 900_000


def test_calendar_goes_on_forever_in_both_directions():
    site = DemoSite()
    assert calendar_path(CALENDAR_ENTRANCE_MONTH) == "/calendar/2026/01.html"
    assert [t for t, _ in site.links("/calendar/2026/01.html")][:2] == [
        "/calendar/2025/12.html", "/calendar/2026/02.html"]
    assert [t for t, _ in site.links("/calendar/2031/12.html")][:2] == [
        "/calendar/2031/11.html", "/calendar/2032/01.html"]
    path = "/calendar/2026/01.html"
    for _ in range(480):  # forty years on, there is still a next month
        months = [calendar_month(target) for target, _ in site.links(path)]
        path = calendar_path(max(month for month in months if month is not None))
    assert path == "/calendar/2066/01.html" and site.render(path, HOST).status == 200
    assert [calendar_month(calendar_path(m)) for m in calendar_window(3)] == list(calendar_window(3))


@pytest.mark.parametrize("path", ["/missing.html", "/p/3000.html", "/p/007.html", "/p/-1.html", "/p/.html",
                                  "/calendar/2026/13.html", "/calendar/2026/1.html", "/calendar/0000/01.html",
                                  "/robots.txt", "/p/", "/index.html",
                                  pytest.param("/p/" + "9" * 5000 + ".html", id="/p/99...99.html")])
def test_anything_else_is_a_404(path):
    page = DemoSite().render(path, HOST)
    assert page.status == 404 and hrefs(page.body) == []


def test_huge_page_is_about_huge_bytes_with_a_couple_of_links():
    for size in (0, 10_000, 2_000_000):
        body = DemoSite(huge_bytes=size).render("/huge.html", HOST).body
        assert size - 200 <= len(body) <= max(size, 500)
        assert len(hrefs(body)) == 2


def test_expected_urls_are_the_root_pages_traps_and_calendar_window():
    site = DemoSite(pages=4, calendar_months=2)
    assert site.expected_urls("http://h:1/") == {
        "http://h:1/", "http://h:1/slow.html", "http://h:1/huge.html",
        "http://h:1/p/0.html", "http://h:1/p/1.html", "http://h:1/p/2.html", "http://h:1/p/3.html",
        "http://h:1/calendar/2026/01.html", "http://h:1/calendar/2026/02.html",
    }


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError, match="pages"):
        DemoSite(pages=0)
    with pytest.raises(ValueError, match="slow_seconds"):
        DemoSite(slow_seconds=-1)


# -- over real HTTP, in its own process ---------------------------------------------------------

SLOW = 1.0


@pytest.fixture(scope="module")
def served() -> Iterator[DemoSiteProcess]:
    with DemoSiteProcess(pages=300, slow_seconds=SLOW, huge_bytes=300_000) as served:
        yield served


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_process_serves_the_model_on_a_free_loopback_port(served):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", served.url)
    assert served.process is not None and served.process.poll() is None
    host = urlsplit(served.url).netloc
    for path in ("/", "/p/0.html", "/p/299.html", "/calendar/2026/07.html"):
        assert get(served.url.rstrip("/") + path) == (200, served.site.render(path, host).body)


def test_session_ids_and_fragments_do_not_change_the_page(served):
    plain = get(served.url + "p/5.html")
    assert get(served.url + "p/5.html?sid=abc123") == plain


def test_missing_page_is_a_404(served):
    assert get(served.url + "missing.html")[0] == 404
    assert get(served.url + "p/300.html")[0] == 404


def test_slow_page_is_slow_without_blocking_the_others(served):
    slow_fetch: dict[str, float] = {}

    def fetch_slow() -> None:
        slow_fetch["started"] = time.monotonic()
        slow_fetch["status"] = get(served.url + "slow.html")[0]
        slow_fetch["answered"] = time.monotonic()

    slow = threading.Thread(target=fetch_slow)
    slow.start()
    time.sleep(0.05)
    assert get(served.url + "p/1.html")[0] == 200
    fast_answered = time.monotonic()
    slow.join()
    assert slow_fetch["status"] == 200
    assert slow_fetch["answered"] - slow_fetch["started"] >= SLOW  # the server holds it at least that long
    # The page asked for after the slow one was answered first: the slow one blocked nothing.
    assert fast_answered < slow_fetch["answered"]


def test_huge_page_over_http(served):
    status, body = get(served.url + "huge.html")
    assert status == 200 and 299_000 <= len(body) <= 300_000
    assert len(hrefs(body)) == 2


def test_connections_are_kept_alive(served):
    parts = urlsplit(served.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        ports = set()
        for page in range(5):
            connection.request("GET", f"/p/{page}.html")
            response = connection.getresponse()
            assert response.status == 200 and response.read()
            ports.add(connection.sock.getsockname()[1])
        assert len(ports) == 1
    finally:
        connection.close()


def test_stop_ends_the_process_and_frees_the_port():
    site = DemoSiteProcess(pages=10).start()
    process, parts = site.process, urlsplit(site.url)
    site.stop()
    assert process.returncode is not None
    with pytest.raises(OSError):
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    site.stop()  # idempotent


def test_site_exits_when_its_owner_lets_go_of_stdin():
    site = DemoSiteProcess(pages=10).start()
    process = site.process
    try:
        process.stdin.close()
        assert process.wait(5) == 0
    finally:
        site.stop()
