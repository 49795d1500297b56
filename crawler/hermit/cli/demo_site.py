"""``hermit demo-site``: serve the built-in demo site alone."""

from __future__ import annotations

import click

from hermit.demo.site import DemoSite

_DEFAULTS = DemoSite()


@click.command("demo-site")
@click.option("--pages", type=click.IntRange(1), default=_DEFAULTS.pages, show_default=True,
              help="Content pages.")
@click.option("--links-per-page", type=click.IntRange(0), default=_DEFAULTS.links_per_page, show_default=True)
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True, help="Seed of the random links.")
@click.option("--slow-seconds", type=click.FloatRange(0), default=_DEFAULTS.slow_seconds, show_default=True,
              help="How long /slow.html takes to answer.")
@click.option("--huge-bytes", type=click.IntRange(0), default=_DEFAULTS.huge_bytes, show_default=True,
              help="Size of /huge.html.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
def demo_site_command(
    pages: int, links_per_page: int, seed: int, slow_seconds: float, huge_bytes: int, host: str, port: int,
) -> None:
    """Serve the generated demo site (content pages plus crawler traps) until interrupted."""
    from hermit.demo.site import main as site_main

    raise SystemExit(site_main([
        "--pages", str(pages), "--links-per-page", str(links_per_page), "--seed", str(seed),
        "--slow-seconds", str(slow_seconds), "--huge-bytes", str(huge_bytes),
        "--host", host, "--port", str(port),
    ]))
