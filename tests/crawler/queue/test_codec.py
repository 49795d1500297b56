"""Round trips and failures of the queue's request encoding."""

from __future__ import annotations

import json
import pickle

import pytest
from scrapy import Request, Spider
from scrapy.http import FormRequest, JsonRequest
from scrapy.utils.request import request_from_dict

from hermit.queue.codec import UndecodableEntry, UnserializableRequest, decode_request, encode_request


class CallbackSpider(Spider):
    name = "codec"

    def parse_page(self, response):  # pragma: no cover - only referenced by name
        pass

    def on_error(self, failure):  # pragma: no cover
        pass


@pytest.fixture
def spider() -> CallbackSpider:
    return CallbackSpider()


def _same(a: Request, b: Request) -> None:
    assert type(a) is type(b)
    for attr in ("url", "method", "body", "cookies", "meta", "encoding", "flags", "cb_kwargs",
                 "callback", "errback", "dont_filter", "priority"):
        assert getattr(a, attr) == getattr(b, attr), attr
    assert dict(a.headers) == dict(b.headers)


def test_plain_request_is_small_and_round_trips(spider):
    request = Request("https://example.com/p/123.html", meta={"depth": 2})
    entry = encode_request(request, spider)
    assert json.loads(entry) == {"u": "https://example.com/p/123.html", "M": {"depth": 2}}
    assert len(entry) < 60
    _same(request, decode_request(entry, spider, priority=0))


def test_full_request_round_trips(spider):
    request = Request(
        "https://example.com/search?q=x",
        method="POST",
        headers={"X-Token": "abc", "Accept": ["text/html", "application/json"]},
        body=b"\x00\xffbinary body",
        cookies={"session": "s1"},
        meta={"depth": 3, "tags": ("a", "b"), "raw": b"\x01\x02", "nested": {"k": [1, 2.5, None, True]},
              7: "int key", "$odd": "dollar key"},
        encoding="latin-1",
        priority=-4,
        dont_filter=True,
        callback=spider.parse_page,
        errback=spider.on_error,
        cb_kwargs={"page": 5, "labels": ["x"]},
        flags=["retry"],
    )
    decoded = decode_request(encode_request(request, spider), spider, priority=-4)
    _same(request, decoded)
    assert decoded.callback == spider.parse_page
    assert decoded.errback == spider.on_error


def test_request_subclasses_round_trip(spider):
    form = FormRequest("https://example.com/login", formdata={"user": "u", "pass": "p"})
    _same(form, decode_request(encode_request(form, spider), spider))
    js = JsonRequest("https://example.com/api", data={"a": 1})
    _same(js, decode_request(encode_request(js, spider), spider))


def test_matches_scrapys_own_dict_form(spider):
    request = Request("https://example.com/", cookies=[{"name": "a", "value": "b"}], meta={"x": [1]})
    decoded = decode_request(encode_request(request, spider), spider)
    assert decoded.to_dict(spider=spider) == request_from_dict(request.to_dict(spider=spider), spider=spider).to_dict(spider=spider)


def test_entry_is_json_not_pickle(spider):
    entry = encode_request(Request("https://example.com/", meta={"b": b"x"}), spider)
    json.loads(entry)
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(entry)


def test_unserializable_meta_is_a_clear_error(spider):
    with pytest.raises(UnserializableRequest, match=r"meta.*object.*can't be queued"):
        encode_request(Request("https://example.com/", meta={"obj": object()}), spider)


def test_callback_that_is_not_a_spider_method_is_a_clear_error(spider):
    with pytest.raises(UnserializableRequest, match="not an instance method"):
        encode_request(Request("https://example.com/", callback=lambda r: None), spider)


@pytest.mark.parametrize(
    "entry, reason",
    [
        (b"\x80\x04garbage", "not JSON"),
        (b"[1, 2]", "no 'u' URL field"),
        (b'{"x": 1}', "no 'u' URL field"),
        (b'{"u": "no-scheme"}', "ValueError"),
        (b'{"u": "https://e.com/", "cb": "missing_method"}', "not found"),
        (b'{"u": "https://e.com/", "M": {"$b": "***"}}', "Error"),
        (b'{"u": "https://e.com/", "cls": "os.system"}', "not a Request class"),
        (b'{"u": "https://e.com/", "cls": "subprocess.Popen"}', "not a Request class"),
    ],
)
def test_undecodable_entries_raise_one_error_type(spider, entry, reason):
    with pytest.raises(UndecodableEntry, match=reason):
        decode_request(entry, spider)
