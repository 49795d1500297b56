"""Round trips and failures of the queue's request encoding."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import pickle
import re
import uuid

import pytest
import scrapy
from scrapy import Request, Spider
from scrapy.http import FormRequest, JsonRequest
from scrapy.utils.request import request_from_dict

from hermit.queue.codec import (
    CODECS,
    UndecodableEntry,
    UnserializableRequest,
    check_codec,
    decode_request,
    encode_request,
)


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
        (b"\x80\x04garbage", "a pickle entry: .* never unpickles"),
        (b"\x00garbage", "not JSON"),
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


class Product(scrapy.Item):
    name = scrapy.Field()
    price = scrapy.Field()
    when = scrapy.Field()


@dataclasses.dataclass
class Listing:
    product: Product
    seen: set[str]


class Opaque:
    """Picklable, but no kind the JSON codec carries."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return type(other) is Opaque and other.value == self.value


def rich_request(spider):
    product = Product(name="lamp", price=decimal.Decimal("19.90"), when=dt.datetime(2026, 3, 1, 9, 30))
    return Request(
        "https://example.com/p/1.html", callback=spider.parse_page,
        meta={"depth": 1, "id": uuid.UUID(int=7), "ttl": dt.timedelta(minutes=5), "day": dt.date(2026, 3, 1)},
        cb_kwargs={"item": product, "listing": Listing(Product(name="x"), {"a", "b"}), "pair": (1, b"\x00")},
    )


@pytest.mark.parametrize("codec", CODECS)
def test_items_and_rich_values_round_trip_in_every_codec(spider, assert_same, codec):
    request = rich_request(spider)
    decoded = decode_request(encode_request(request, spider, codec=codec), spider, codec=codec)
    _same(request, decoded)
    assert_same(request.meta, decoded.meta)
    assert_same(request.cb_kwargs, decoded.cb_kwargs)


def test_the_default_codec_is_json(spider):
    request = rich_request(spider)
    entry = encode_request(request, spider)
    assert entry == encode_request(request, spider, codec="json")
    assert json.loads(entry)["k"]["item"] == {"$o": [f"{__name__}:Product", {
        "name": "lamp", "price": {"$n": "19.90"}, "when": {"$dt": "2026-03-01T09:30:00"}}]}


def test_an_unqueueable_value_names_its_path_and_the_fix(spider):
    request = Request("https://example.com/", cb_kwargs={"item": {"when": Opaque(1)}})
    with pytest.raises(UnserializableRequest, match=re.escape("cb_kwargs['item']['when'] is a")) as info:
        encode_request(request, spider)
    assert 'HERMIT_QUEUE_CODEC = "pickle"' in str(info.value)


def test_pickle_codec_queues_what_pickle_can(spider):
    request = Request("https://example.com/", meta={"o": Opaque([1, 2])})
    entry = encode_request(request, spider, codec="pickle")
    assert decode_request(entry, spider, codec="pickle").meta == {"o": Opaque([1, 2])}


def test_pickle_codec_names_the_unpicklable_value(spider):
    request = Request("https://example.com/", cb_kwargs={"item": {"when": [1, lambda: 0]}})
    with pytest.raises(UnserializableRequest, match=re.escape("cb_kwargs['item']['when'][1] can't be pickled")):
        encode_request(request, spider, codec="pickle")


def test_pickle_codec_reads_json_entries_and_json_never_unpickles(spider, monkeypatch):
    request = rich_request(spider)
    _same(request, decode_request(encode_request(request, spider), spider, codec="pickle"))
    entry = encode_request(request, spider, codec="pickle")
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(UndecodableEntry, match="a pickle entry"):
        decode_request(entry, spider)


def test_plain_requests_keep_their_bytes(spider):
    url = "https://shop.example.com/catalog/books/107919.html?page=2"
    request = Request(url, meta={"depth": 2})
    assert encode_request(request, spider) == b'{"u":"%s","M":{"depth":2}}' % url.encode()
    # The pickle codec stores the same compact dict: a pickle's framing more, no field names.
    assert len(encode_request(request, spider)) < len(encode_request(request, spider, codec="pickle")) < 110


def test_unknown_codec_is_a_clear_error(spider):
    with pytest.raises(ValueError, match="HERMIT_QUEUE_CODEC must be one of"):
        encode_request(Request("https://example.com/"), spider, codec="yaml")
    assert check_codec("pickle") == "pickle"


NOT_CALLED: list[str] = []


class NotAnItem:
    def __init__(self, *args, **kwargs):  # pragma: no cover - must never run
        NOT_CALLED.append("NotAnItem")


def never_called(*args, **kwargs):  # pragma: no cover - must never run
    NOT_CALLED.append("never_called")


@pytest.mark.parametrize("name", ["NotAnItem", "never_called"])
def test_an_entry_naming_another_class_or_a_function_is_undecodable(spider, name):
    entry = json.dumps({"u": "https://e.com/", "k": {"x": {"$o": [f"{__name__}:{name}", {}]}}}).encode()
    with pytest.raises(UndecodableEntry, match="is not a scrapy Item, dataclass or attrs class"):
        decode_request(entry, spider)
    entry = json.dumps({"u": "https://e.com/", "cls": f"{__name__}.{name}"}).encode()
    with pytest.raises(UndecodableEntry, match="is not a Request class"):
        decode_request(entry, spider)
    assert NOT_CALLED == []


def test_numbers_only_the_standard_json_module_reads_round_trip(spider):
    # json.dumps writes Infinity and integers beyond 64 bits, which the fast parser
    # refuses: those entries must still decode, not be dead-lettered.
    meta = {"big": 2**70, "inf": float("inf"), "negative": -(2**65)}
    entry = encode_request(Request("https://a.example/", meta=meta), spider)
    assert b"Infinity" in entry
    assert decode_request(entry, spider).meta == meta
