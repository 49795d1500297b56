"""A generated site spread over many hosts (127.0.0.2, 127.0.0.3, …), which logs every request.

Every address of 127.0.0.0/8 is loopback, so each host is a separate download slot
for Scrapy while all of them are one server on one port. The site is what a polite
crawl of many sites needs to be checked against: the log holds each request's time,
host, path and status, so per-host rates can be counted across a whole fleet.

The site map: ``/`` (on any host) links to page 0 of every host. ``/p/<n>.html`` for
n in [0, pages) on each host links to its children in a k-ary tree (so every page is
reachable from page 0), to more pages of the same host and to pages of other hosts,
``same_host_links`` and ``other_host_links`` in all. Per host it can also: serve a
robots.txt with a ``Crawl-delay`` (``robots_delays``), answer its first requests
with 429 and a ``Retry-After`` (``too_many``), answer slowly (``slow``), or never
answer (``hang``).

``python -m hermit.demo.many_hosts --hosts 40 --pages 60 --log requests.log``
serves it until interrupted (or until its stdin closes) and prints its port.
The :class:`ManyHostsSpider` (``many-hosts``) crawls it: one item per page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import ipaddress
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import scrapy

from hermit.demo.site import _listening_socket

if TYPE_CHECKING:
    from aiohttp import web
    from scrapy.http import Response

FIRST_ADDRESS = ipaddress.IPv4Address("127.0.0.2")


def _draw(*parts: object) -> int:
    return struct.unpack("<Q", hashlib.blake2b(repr(parts).encode(), digest_size=8).digest())[0]


@dataclass(frozen=True)
class ManyHostsSite:
    """The model: hosts, pages and links (deterministic), and the ground truth of a crawl."""

    hosts: int = 40
    pages: int = 60
    same_host_links: int = 8
    other_host_links: int = 2
    branching: int = 4
    robots_delays: dict[str, float] = field(default_factory=dict)  # host -> Crawl-delay seconds
    too_many: dict[str, tuple[int, float]] = field(default_factory=dict)  # host -> (first N answers 429, Retry-After)
    slow: dict[str, float] = field(default_factory=dict)  # host -> seconds before each answer
    hang: frozenset[str] = frozenset()  # hosts that never answer

    def __post_init__(self) -> None:
        if not 1 <= self.hosts <= 60_000:
            raise ValueError("hosts must be between 1 and 60000")
        if self.pages < 1:
            raise ValueError("pages must be at least 1")

    def host(self, index: int) -> str:
        """The address of host *index* (0-based)."""
        return str(FIRST_ADDRESS + index)

    @property
    def host_names(self) -> list[str]:
        return [self.host(i) for i in range(self.hosts)]

    def page_links(self, host_index: int, page: int) -> list[tuple[int, int]]:
        """(host index, page) of each link on a page."""
        links = [(host_index, c) for c in range(page * self.branching + 1, page * self.branching + 1 + self.branching)
                 if c < self.pages]
        n = 0
        while len(links) < self.same_host_links:
            links.append((host_index, _draw("same", host_index, page, n) % self.pages))
            n += 1
        for n in range(self.other_host_links):
            other = _draw("other", host_index, page, n) % self.hosts
            links.append((other, _draw("other-page", host_index, page, n) % self.pages))
        return links

    def url(self, host_index: int, page: int, port: int) -> str:
        return f"http://{self.host(host_index)}:{port}/p/{page}.html"

    def expected_urls(self, port: int) -> set[str]:
        """Every page a complete crawl from ``/`` fetches (hosts that hang excepted)."""
        return {
            self.url(h, p, port) for h in range(self.hosts) if self.host(h) not in self.hang for p in range(self.pages)
        }

    def root_body(self, port: int) -> bytes:
        links = "".join(f'<a href="{self.url(h, 0, port)}">host {h}</a>\n' for h in range(self.hosts))
        return f"<!DOCTYPE html><html><body>{links}</body></html>".encode()

    def page_body(self, host_index: int, page: int, port: int) -> bytes:
        links = "".join(f'<a href="{self.url(h, p, port)}">{h}/{p}</a>\n' for h, p in self.page_links(host_index, page))
        return (f"<!DOCTYPE html><html><head><title>{self.host(host_index)} page {page}</title></head>"
                f"<body>{links}</body></html>").encode()


@dataclass
class RequestRecord:
    """One line of the request log."""

    time: float
    host: str
    path: str
    status: int


def read_log(path: Path) -> list[RequestRecord]:
    """The request log a server wrote."""
    records = []
    for line in path.read_text().splitlines():
        when, host, path_, status = line.split(" ")
        records.append(RequestRecord(float(when), host, path_, int(status)))
    return records


def highest_rates(records: list[RequestRecord], window_seconds: float) -> dict[str, int]:
    """Per host, the most page requests seen in any window of *window_seconds* (robots.txt aside)."""
    by_host: dict[str, list[float]] = {}
    for r in records:
        if r.path != "/robots.txt":
            by_host.setdefault(r.host, []).append(r.time)
    result = {}
    for host, times in by_host.items():
        times.sort()
        best, start = 0, 0
        for end in range(len(times)):
            while times[end] - times[start] >= window_seconds:
                start += 1
            best = max(best, end - start + 1)
        result[host] = best
    return result


def shortest_gaps(records: list[RequestRecord]) -> dict[str, float]:
    """Per host, the shortest time between two page requests."""
    by_host: dict[str, list[float]] = {}
    for r in records:
        if r.path != "/robots.txt":
            by_host.setdefault(r.host, []).append(r.time)
    return {h: min((b - a for a, b in zip(sorted(t), sorted(t)[1:])), default=float("inf"))
            for h, t in by_host.items()}


async def serve(site: ManyHostsSite, port: int, log: IO[str] | None) -> tuple[Any, int]:
    """Serve *site* on every host's address at *port* (0: a free one); return (runner, port)."""
    from aiohttp import web

    index = {site.host(i): i for i in range(site.hosts)}
    answered: dict[str, int] = {}
    headers = {"Content-Type": "text/html; charset=utf-8"}
    bound = [port]

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        host = (request.headers.get("Host") or "").rsplit(":", 1)[0]
        status, body, extra = 404, b"not found", {}
        if host in site.hang:
            await asyncio.sleep(3600)
        delay = site.slow.get(host, 0.0)
        if delay:
            await asyncio.sleep(delay)
        path = request.path
        if host in index:
            throttle = site.too_many.get(host)
            count = answered.get(host, 0)
            if path == "/robots.txt":
                if host in site.robots_delays:
                    status, body = 200, f"User-agent: *\nCrawl-delay: {site.robots_delays[host]}\n".encode()
            elif throttle and count < throttle[0]:
                answered[host] = count + 1
                status, body = 429, b"slow down"
                extra = {"Retry-After": f"{throttle[1]:g}"}
            elif path == "/":
                status, body = 200, site.root_body(bound[0])
            elif path.startswith("/p/") and path.endswith(".html"):
                try:
                    page = int(path[3:-5])
                except ValueError:
                    page = -1
                if 0 <= page < site.pages:
                    status, body = 200, site.page_body(index[host], page, bound[0])
        if log is not None:
            log.write(f"{time.time():.6f} {host or '-'} {path} {status}\n")
        return web.Response(status=status, body=body, headers={**headers, **extra})

    runner = web.ServerRunner(web.Server(handle, access_log=None), shutdown_timeout=0.5)
    await runner.setup()
    for name in site.host_names:
        # Our own sockets: the first bind picks the port, every other host takes the same.
        sock = _listening_socket(name, bound[0])
        bound[0] = sock.getsockname()[1]
        await web.SockSite(runner, sock, backlog=1024).start()
    return runner, bound[0]


def _pairs(values: Sequence[str], what: str) -> Iterator[tuple[str, str]]:
    for value in values:
        host, sep, rest = value.partition("=")
        if not sep:
            raise SystemExit(f"--{what} takes HOST=VALUE, not {value!r}")
        yield host, rest


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hermit.demo.many_hosts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--pages", type=int, default=60, help="pages per host")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path, help="append one line per request: time host path status")
    parser.add_argument("--robots-delay", action="append", default=[], metavar="HOST=SECONDS")
    parser.add_argument("--too-many", action="append", default=[], metavar="HOST=COUNT:RETRY_AFTER",
                        help="answer HOST's first COUNT requests with 429 and this Retry-After")
    parser.add_argument("--slow", action="append", default=[], metavar="HOST=SECONDS")
    parser.add_argument("--hang", action="append", default=[], metavar="HOST")
    parser.add_argument("--stop-on-stdin-eof", action="store_true")
    return parser


def site_from_arguments(args: argparse.Namespace) -> ManyHostsSite:
    too_many = {}
    for host, value in _pairs(args.too_many, "too-many"):
        count, _, retry_after = value.partition(":")
        too_many[host] = (int(count), float(retry_after or 0))
    return ManyHostsSite(
        hosts=args.hosts, pages=args.pages,
        robots_delays={h: float(v) for h, v in _pairs(args.robots_delay, "robots-delay")},
        too_many=too_many,
        slow={h: float(v) for h, v in _pairs(args.slow, "slow")},
        hang=frozenset(args.hang),
    )


async def _main(site: ManyHostsSite, port: int, log_path: Path | None, stop_on_stdin_eof: bool) -> None:
    log = log_path.open("a", buffering=1) if log_path else None
    try:
        runner, bound = await serve(site, port, log)
        print(f"serving port {bound} on {site.host(0)}..{site.host(site.hosts - 1)}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if stop_on_stdin_eof:
            def watch() -> None:
                while os.read(sys.stdin.fileno(), 65536):
                    pass
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=watch, daemon=True).start()
        await stop.wait()
        await runner.cleanup()
    finally:
        if log is not None:
            log.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _argument_parser().parse_args(argv)
    asyncio.run(_main(site_from_arguments(args), args.port, args.log, args.stop_on_stdin_eof))
    return 0


class ManyHostsProcess:
    """The site in its own process (``with ManyHostsProcess(...) as site:``), logging to ``log``.

    *options* are the command line's (``robots_delay=["127.0.0.3=1"]``, ``hang=[...]``…).
    """

    def __init__(self, hosts: int, pages: int, log: Path, **options: list[str]) -> None:
        self.log = log
        self.site = site_from_arguments(_argument_parser().parse_args(
            ["--hosts", str(hosts), "--pages", str(pages)]
            + [arg for name, values in options.items() for value in values
               for arg in (f"--{name.replace('_', '-')}", value)]
        ))
        self.command = [sys.executable, "-m", "hermit.demo.many_hosts", "--hosts", str(hosts), "--pages", str(pages),
                        "--log", str(log), "--stop-on-stdin-eof"]
        for name, values in options.items():
            for value in values:
                self.command += [f"--{name.replace('_', '-')}", value]
        self.port = 0
        self._process: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.site.host(0)}:{self.port}/"

    def __enter__(self) -> ManyHostsProcess:
        import subprocess

        self._process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         start_new_session=True)
        line = self._process.stdout.readline().decode()
        if not line.startswith("serving port "):
            self._process.kill()
            raise RuntimeError(f"the many-hosts site did not start: {line!r}")
        self.port = int(line.split()[2])
        return self

    def records(self) -> list[RequestRecord]:
        return read_log(self.log)

    def __exit__(self, *exc_info: object) -> None:
        import subprocess

        self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class ManyHostsSpider(scrapy.Spider):
    """``many-hosts``: crawls the many-hosts site from ``-a url=http://127.0.0.2:PORT/``, one item per page."""

    name = "many-hosts"

    def __init__(self, url: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not url:
            raise ValueError("the many-hosts spider needs -a url=http://127.0.0.2:PORT/")
        self.url = url
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])

    async def start(self):  # Scrapy >= 2.13
        yield scrapy.Request(self.url, callback=self.parse)

    def parse(self, response: Response):
        if "/p/" in response.url:
            yield {"url": response.url}
        for href in response.css("a::attr(href)").getall():
            if href.startswith("http://127.") and f":{self.port}/" in href:
                yield response.follow(href, callback=self.parse)


if __name__ == "__main__":
    sys.exit(main())
