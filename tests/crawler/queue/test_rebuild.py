"""Requests rebuilt from queue entries: URLs taken as they are only where escaping
them again would change nothing, and otherwise built exactly as Request() builds them."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scrapy import Request, Spider
from scrapy.http import FormRequest, JsonRequest
from scrapy.utils import trackref
from w3lib.url import safe_url_string

from hermit.queue.codec import UndecodableEntry, decode_request, encode_request
from hermit.queue.rebuild import VERBATIM_URL, build_request


class RebuildSpider(Spider):
    name = "rebuild"

    def parse_item(self, response):  # pragma: no cover - only named
        pass


class EscapingRequest(Request):
    """A subclass with its own URL rule: it must keep being applied."""

    def _set_url(self, url: str) -> None:
        super()._set_url(url.replace("/old/", "/new/"))


@pytest.fixture
def spider() -> Spider:
    return RebuildSpider()


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(VERBATIM_URL, fullmatch=True))
def test_every_url_taken_verbatim_is_one_escaping_leaves_unchanged(url):
    assert safe_url_string(url) == url
    assert Request(url).url == url


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=string.printable + "äé€\u00a0", max_size=40))
def test_any_url_comes_back_as_request_would_make_it(tail):
    spider = RebuildSpider()
    url = "http://example.com/" + tail
    try:
        expected = Request(url)
    except ValueError:
        return
    rebuilt = decode_request(encode_request(Request(url), spider), spider)
    assert rebuilt.url == expected.url
    # And an entry written by hand with the raw URL is escaped as Request() escapes it.
    raw = decode_request(json.dumps({"u": url}).encode(), spider)
    assert raw.url == expected.url


@pytest.mark.parametrize("url", [
    "HTTP://Example.COM/a", "http://example.com/a b", "http://example.com/ä", "https://u@example.com/",
    "http://example.com/a'b?x'y", "http://example.com/?", "http://example.com/a#frag",
    "http://[::1]:8080/x", "http://example.com:080/", "http://example.com/a[b]",
])
def test_urls_needing_or_maybe_needing_escaping_are_not_taken_verbatim(spider, url):
    assert not VERBATIM_URL.fullmatch(url)
    rebuilt = decode_request(json.dumps({"u": url}).encode(), spider)
    assert rebuilt.url == Request(url).url


def test_rebuilt_requests_are_their_own_class_and_tracked_as_it(spider):
    before = len(trackref.live_refs.get(Request, {}))
    requests = [decode_request(encode_request(Request(f"https://example.com/p/{i}.html"), spider), spider)
                for i in range(5)]
    assert all(type(r) is Request for r in requests)
    assert len(trackref.live_refs[Request]) == before + 5
    form = decode_request(encode_request(FormRequest("https://example.com/s", formdata={"q": "a b"}), spider),
                          spider)
    assert type(form) is FormRequest and form.body == b"q=a+b"
    as_json = decode_request(encode_request(JsonRequest("https://example.com/api", data={"x": 1}), spider),
                             spider)
    assert type(as_json) is JsonRequest and json.loads(as_json.body) == {"x": 1}


def test_a_class_with_its_own_url_rule_keeps_it(spider):
    rebuilt = build_request(EscapingRequest, {"url": "https://example.com/old/1"}, spider)
    assert type(rebuilt) is EscapingRequest and rebuilt.url == "https://example.com/new/1"


def test_callbacks_are_the_spiders_methods_and_unknown_ones_refused(spider):
    rebuilt = build_request(Request, {"url": "https://example.com/", "callback": "parse_item",
                                      "cb_kwargs": {"a": 1}, "meta": {"depth": 3}}, spider)
    assert rebuilt.callback == spider.parse_item and rebuilt.cb_kwargs == {"a": 1}
    assert rebuilt.meta == {"depth": 3}
    with pytest.raises(ValueError, match="not found"):
        build_request(Request, {"url": "https://example.com/", "errback": "nope"}, spider)


@pytest.mark.parametrize("url", ["example.com/no-scheme", ""])
def test_urls_without_a_scheme_are_undecodable(spider, url):
    with pytest.raises(UndecodableEntry, match="Missing scheme"):
        decode_request(json.dumps({"u": url}).encode(), spider)
