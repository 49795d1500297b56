"""The demo site: a deterministic, generated website full of crawler traps, and its server.

Every page is rendered when it is asked for, from the site's parameters and the page
number alone, so a site of a million pages costs nothing up front and O(links) per page.
:class:`DemoSite` is the model (what each path returns, and the ground truth of what a
correct crawl finds); :func:`start_server` puts it behind aiohttp's low-level server;
``python -m hermit.demo.site --pages N --port P`` serves it until interrupted.

The site map:

* ``/`` links to ``/p/0.html`` and to the entrance of every trap.
* ``/p/<n>.html`` for n in [0, pages): page n links home, to its parent and to its
  children in a k-ary tree (so every page is reachable from ``/``), then to
  pseudo-random pages (so most links are duplicates). Links are spelled four ways
  (``7.html``, ``../p/7.html``, ``/p/7.html``, ``http://<Host>/p/7.html``); some carry a
  ``#fragment`` or a ``?sid=`` session token that differs per referring page.
* ``/calendar/YYYY/MM.html``: every month links the previous and the next one, forever.
* ``/missing.html`` answers 404, ``/slow.html`` answers after ``slow_seconds`` and
  ``/huge.html`` is about ``huge_bytes`` of HTML. Anything else is a 404.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import html
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from aiohttp import web

# Months are numbered year * 12 + (month - 1), so neighbours differ by one.
CALENDAR_ENTRANCE_MONTH = 2026 * 12
_FIRST_CALENDAR_MONTH = 1 * 12  # 0001/01: paths only have four digits for the year
_LAST_CALENDAR_MONTH = 9999 * 12 + 11

HOME_SID_REFERRER = -1

_KIND_HOME = "home"
_KIND_CONTENT = "content"
_KIND_CALENDAR = "calendar"
_KIND_SLOW = "slow"
_KIND_HUGE = "huge"
_KIND_MISSING = "missing"

_NOT_FOUND_BODY = (
    b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Not found</title></head>\n'
    b"<body><h1>Not found</h1></body></html>\n"
)


def _draws(label: str, count: int) -> tuple[int, ...]:
    """``count`` pseudo-random 64-bit integers that depend only on ``label``.

    One SHAKE-128 call per page: far cheaper in Python than hashing link by link, and
    the same on every platform and Python version (unlike ``random`` or ``hash``).
    """
    return struct.unpack(f"<{count}Q", hashlib.shake_128(label.encode()).digest(8 * count))


def content_path(page: int) -> str:
    return f"/p/{page}.html"


def calendar_path(month: int) -> str:
    year, month_of_year = divmod(month, 12)
    return f"/calendar/{year:04d}/{month_of_year + 1:02d}.html"


def calendar_month(path: str) -> int | None:
    """The month number (year * 12 + month - 1) of a ``/calendar/YYYY/MM.html`` path, else None."""
    # "/calendar/" + "YYYY/MM.html"
    if len(path) != 22 or not path.startswith("/calendar/") or not path.endswith(".html") or path[14] != "/":
        return None
    year_text, month_text = path[10:14], path[15:17]
    if not (year_text.isascii() and year_text.isdigit() and month_text.isascii() and month_text.isdigit()):
        return None
    year, month_of_year = int(year_text), int(month_text)
    if not 1 <= month_of_year <= 12:
        return None
    month = year * 12 + month_of_year - 1
    return month if _FIRST_CALENDAR_MONTH <= month <= _LAST_CALENDAR_MONTH else None


def calendar_window(months: int) -> range:
    """The months a complete crawl visits: the entrance month and the ``months - 1`` after it."""
    return range(CALENDAR_ENTRANCE_MONTH, CALENDAR_ENTRANCE_MONTH + max(months, 0))


def _content_page(path: str, pages: int) -> int | None:
    if not path.startswith("/p/") or not path.endswith(".html"):
        return None
    digits = path[3:-5]
    # Only the canonical spelling exists: /p/007.html would be a second URL for page 7.
    # The length cap keeps int() cheap (and within its limit) on hostile paths.
    if not (digits.isascii() and digits.isdigit()) or (len(digits) > 1 and digits[0] == "0") or len(digits) > 18:
        return None
    page = int(digits)
    return page if page < pages else None


@dataclass(frozen=True)
class RenderedPage:
    status: int
    body: bytes
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class DemoSite:
    """The generated site; the same parameters always give the same pages, byte for byte.

    ``calendar_months`` does not change what is served (the calendar never ends): it is
    the window of months a complete crawl is expected to visit, see :meth:`expected_urls`.
    """

    pages: int = 3000
    links_per_page: int = 20
    seed: int = 0
    slow_seconds: float = 2.0
    huge_bytes: int = 2_000_000
    calendar_months: int = 12

    def __post_init__(self) -> None:
        if self.pages < 1:
            raise ValueError(f"pages must be at least 1, not {self.pages}")
        for name in ("links_per_page", "slow_seconds", "huge_bytes", "calendar_months"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")

    # -- the link graph -----------------------------------------------------------------

    @property
    def branching(self) -> int:
        """Children per page in the tree that makes every page reachable."""
        return max(1, self.links_per_page // 4)

    def children(self, page: int) -> range:
        first = self.branching * page + 1
        return range(min(first, self.pages), min(first + self.branching, self.pages))

    def parent(self, page: int) -> int | None:
        return (page - 1) // self.branching if page > 0 else None

    def sid_token(self, referrer: int) -> str:
        """The session token in links on page ``referrer`` (:data:`HOME_SID_REFERRER` for ``/``)."""
        return hashlib.shake_128(f"sid:{self.seed}:{referrer}".encode()).hexdigest(6)

    def links(self, path: str, host: str = "demo.invalid") -> list[tuple[str, str]]:
        """Every link on the page at ``path``, in page order, as (target path, href as written).

        The target path is where the href leads once resolved, with the query and the
        fragment dropped. ``host`` is the request's Host header, used by absolute links.
        """
        return self._links(*self._resolve(path), host)

    def _links(self, kind: str, number: int, host: str) -> list[tuple[str, str]]:
        if kind == _KIND_HOME:
            return self._home_links(host)
        if kind == _KIND_CONTENT:
            return self._content_links(number, host)
        if kind == _KIND_CALENDAR:
            return self._calendar_links(number)
        if kind == _KIND_SLOW:
            return [("/", "/"), (content_path(0), "p/0.html")]
        if kind == _KIND_HUGE:
            last = content_path(min(1, self.pages - 1))
            return [("/", "/"), (last, last)]
        return []

    def _resolve(self, path: str) -> tuple[str, int]:
        if path == "/":
            return _KIND_HOME, 0
        page = _content_page(path, self.pages)
        if page is not None:
            return _KIND_CONTENT, page
        month = calendar_month(path)
        if month is not None:
            return _KIND_CALENDAR, month
        if path == "/slow.html":
            return _KIND_SLOW, 0
        if path == "/huge.html":
            return _KIND_HUGE, 0
        return _KIND_MISSING, 0

    def _home_links(self, host: str) -> list[tuple[str, str]]:
        second = content_path(min(1, self.pages - 1))
        sid = self.sid_token(HOME_SID_REFERRER)
        return [
            (content_path(0), "p/0.html"),
            (calendar_path(CALENDAR_ENTRANCE_MONTH), calendar_path(CALENDAR_ENTRANCE_MONTH)),
            ("/missing.html", "missing.html"),
            ("/slow.html", "/slow.html"),
            ("/huge.html", f"http://{host}/huge.html"),
            (content_path(0), "/p/0.html#top"),
            (second, f"{second[1:]}?sid={sid}"),
        ]

    def _content_links(self, page: int, host: str) -> list[tuple[str, str]]:
        targets = ["/"]
        parent = self.parent(page)
        if parent is not None:
            targets.append(content_path(parent))
        targets.extend(content_path(child) for child in self.children(page))
        random_links = max(0, self.links_per_page - len(targets))
        # One draw per link (its low bits pick a random target, its high bits the
        # spelling), one for a trap link and one for the page itself.
        *draws, trap_draw, page_draw = _draws(f"links:{self.seed}:{page}", len(targets) + random_links + 2)
        targets.extend(content_path((draw & 0xFFFFFFFFFF) % self.pages) for draw in draws[len(targets):])
        if page_draw & 15 == 0:
            # One page in sixteen also leads into a trap, some months outside the crawl window.
            draws.append(trap_draw)
            targets.append(self._trap_target(page_draw >> 4))
        sid = self.sid_token(page)
        return [
            (target, _href_from_content_page(target, draw, host, sid))
            for target, draw in zip(targets, draws, strict=True)
        ]

    @staticmethod
    def _trap_target(draw: int) -> str:
        kind = draw & 3
        if kind == 0:
            return calendar_path(CALENDAR_ENTRANCE_MONTH - 6 + (draw >> 2) % 24)
        return ("/missing.html", "/slow.html", "/huge.html")[kind - 1]

    def _calendar_links(self, month: int) -> list[tuple[str, str]]:
        links = []
        for neighbour in (month - 1, month + 1):
            if _FIRST_CALENDAR_MONTH <= neighbour <= _LAST_CALENDAR_MONTH:
                path = calendar_path(neighbour)
                # Relative to /calendar/YYYY/: a month of the same year is just "MM.html".
                href = path[15:] if neighbour // 12 == month // 12 else "../" + path[10:]
                links.append((path, href))
        links.append(("/", "../../"))
        links.append((content_path(0), "/p/0.html"))
        return links

    # -- rendering ------------------------------------------------------------------------

    def render(self, path: str, host: str) -> RenderedPage:
        """What the server answers for ``path`` (no query) when asked with Host ``host``."""
        kind, number = self._resolve(path)
        if kind == _KIND_MISSING:
            return RenderedPage(404, _NOT_FOUND_BODY)
        if kind == _KIND_HUGE:
            return RenderedPage(200, self._huge_body)
        links = self._links(kind, number, html.escape(host, quote=True))
        if kind == _KIND_CONTENT:
            text = f"<p>Page {number} of {self.pages} in the Hermit demo site.</p>\n"
            return RenderedPage(200, _html_page(f"Page {number}", links, text))
        if kind == _KIND_CALENDAR:
            year, month_of_year = divmod(number, 12)
            return RenderedPage(200, _html_page(f"Calendar {year:04d}/{month_of_year + 1:02d}", links))
        if kind == _KIND_SLOW:
            return RenderedPage(200, _html_page("Slow page", links), self.slow_seconds)
        return RenderedPage(200, _html_page("Home", links))

    @cached_property
    def _huge_body(self) -> bytes:
        # Built once: its links are root-relative so one body serves every Host.
        head = _html_page("Huge page", self.links("/huge.html"), "{filler}")
        before, after = head.split(b"{filler}")
        line = b"<p>" + b"All work and no play makes a huge page. " * 2 + b"</p>\n"
        repeats = max(0, self.huge_bytes - len(before) - len(after)) // len(line)
        return before + line * repeats + after

    # -- ground truth ---------------------------------------------------------------------

    def expected_urls(self, base_url: str) -> set[str]:
        """The absolute URLs a complete, duplicate-free crawl of the site served at ``base_url`` yields.

        Session ids and fragments are stripped; 404s are not pages; calendar months
        count only inside the crawl window of ``calendar_months`` months.
        """
        parts = urlsplit(base_url)
        root = f"{parts.scheme}://{parts.netloc}"
        urls = {root + "/", root + "/slow.html", root + "/huge.html"}
        urls.update(f"{root}/p/{page}.html" for page in range(self.pages))
        urls.update(root + calendar_path(month) for month in calendar_window(self.calendar_months))
        return urls


def _href_from_content_page(target: str, draw: int, host: str, sid: str) -> str:
    spelling = (draw >> 56) & 3
    if spelling == 0:
        href = target[3:] if target.startswith("/p/") else ".." + target
    elif spelling == 1:
        href = ".." + target
    elif spelling == 2:
        href = target
    else:
        href = f"http://{host}{target}"
    if (draw >> 58) & 3 == 0:
        href += "?sid=" + sid
    if (draw >> 60) & 7 == 0:
        href += f"#s{(draw >> 20) & 7}"
    return href


def _html_page(title: str, links: list[tuple[str, str]], text: str = "") -> bytes:
    items = "".join(f'<li><a href="{href}">{target}</a></li>\n' for target, href in links)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n{text}<ul>\n{items}</ul>\n</body></html>\n"
    ).encode()


# -- the server -----------------------------------------------------------------------------


@dataclass
class RunningSite:
    """A site being served in this event loop; ``url`` is its base URL, ending in ``/``."""

    url: str
    runner: web.BaseRunner

    async def close(self) -> None:
        await self.runner.cleanup()


def _listening_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def start_server(site: DemoSite, host: str = "127.0.0.1", port: int = 0) -> RunningSite:
    """Serve ``site`` on ``host``:``port`` (0 picks a free port) in the running event loop."""
    from aiohttp import web

    # Binding our own socket is how a port-0 listener learns its real port.
    sock = _listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    own_host = f"{url_host}:{bound_port}"
    headers = {"Content-Type": "text/html; charset=utf-8"}

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        # Not request.host: without a Host header it falls back to a DNS lookup.
        page = site.render(request.path, request.headers.get("Host") or own_host)
        if page.delay_seconds > 0:
            await asyncio.sleep(page.delay_seconds)
        return web.Response(status=page.status, body=page.body, headers=headers)

    # No access log: formatting one line per request would cost more than rendering the page.
    runner = web.ServerRunner(web.Server(handle, access_log=None), shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.SockSite(runner, sock, backlog=1024).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    return RunningSite(url=f"http://{own_host}/", runner=runner)


def _stop_at_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader holds its
    # lock, and the interpreter aborts when it finalizes that reader at exit.
    stdin = sys.stdin.fileno()
    while os.read(stdin, 65536):
        pass
    with contextlib.suppress(RuntimeError):  # the loop may already be closed
        loop.call_soon_threadsafe(stop.set)


async def _serve_until_stopped(site: DemoSite, host: str, port: int, stop_on_stdin_eof: bool) -> None:
    running = await start_server(site, host, port)
    try:
        print(f"serving {running.url} ({site.pages} pages)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        if stop_on_stdin_eof:
            threading.Thread(target=_stop_at_stdin_eof, args=(loop, stop), daemon=True).start()
        await stop.wait()
    finally:
        await running.close()


def _argument_parser() -> argparse.ArgumentParser:
    defaults = DemoSite()
    parser = argparse.ArgumentParser(
        prog="hermit-demo-site",
        description="Serve the generated Hermit demo site (content pages plus crawler traps).",
    )
    parser.add_argument("--pages", type=int, default=defaults.pages, help="number of content pages")
    parser.add_argument("--links-per-page", type=int, default=defaults.links_per_page)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the random links")
    parser.add_argument("--slow-seconds", type=float, default=defaults.slow_seconds,
                        help="how long /slow.html takes to answer")
    parser.add_argument("--huge-bytes", type=int, default=defaults.huge_bytes, help="size of /huge.html")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--stop-on-stdin-eof", action="store_true",
                        help="exit when standard input closes (so the site dies with its parent)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _argument_parser()
    args = parser.parse_args(argv)
    try:
        site = DemoSite(
            pages=args.pages, links_per_page=args.links_per_page, seed=args.seed,
            slow_seconds=args.slow_seconds, huge_bytes=args.huge_bytes,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve_until_stopped(site, args.host, args.port, args.stop_on_stdin_eof))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
