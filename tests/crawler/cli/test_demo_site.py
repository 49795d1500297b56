"""``hermit demo-site`` serves the site alone, on loopback, until stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

from hermit.demo.site import DemoSite


def test_demo_site_serves_pages_until_interrupted():
    proc = subprocess.Popen(
        [sys.executable, "-m", "hermit.cli", "demo-site", "--port", "0", "--pages", "7"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[1]
        with urllib.request.urlopen(url + "p/6.html", timeout=10) as response:
            body = response.read()
        assert body == DemoSite(pages=7).render("/p/6.html", url.split("/")[2]).body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


def test_invalid_option_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "hermit.cli", "demo-site", "--pages", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Invalid value for '--pages'" in proc.stderr
