"""The tagged values queued requests carry: round trips over every allowed kind, and refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
import zoneinfo
from typing import Any

import attrs
import pydantic
import pytest
import scrapy
from hypothesis import given, settings
from hypothesis import strategies as st

from hermit.queue.values import UndecodableValue, UnencodableValue, decode_value, encode_value


class Color(enum.Enum):
    RED = "red"
    GREEN = ("g", 2)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    READ = 1
    WRITE = 2


class Product(scrapy.Item):
    name = scrapy.Field()
    price = scrapy.Field()
    extra = scrapy.Field()


@dataclasses.dataclass
class Offer:
    seller: Any
    price: Any = None
    seen: Any = dataclasses.field(default=None, init=False)


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any


@dataclasses.dataclass(slots=True)
class Slotted:
    a: Any


@attrs.define
class Review:
    text: Any
    _stars: Any = 0


@attrs.frozen
class Tag:
    name: Any


class Outer:
    @dataclasses.dataclass
    class Inner:
        v: Any


class Listing(pydantic.BaseModel):
    title: Any
    price: Any = None


class Sku(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)
    code: Any


class Loose(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    kind: Any = "page"


class Crumbs(pydantic.RootModel[Any]):
    pass


ZONES = [zoneinfo.ZoneInfo("Europe/Paris"), zoneinfo.ZoneInfo("America/New_York")]
timezones = (
    st.none() | st.just(dt.timezone.utc) | st.sampled_from(ZONES)
    | st.builds(dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=23), max_value=dt.timedelta(hours=23)))
)
hashable_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
    | st.datetimes(timezones=timezones) | st.dates() | st.times(timezones=st.none() | st.just(dt.timezone.utc))
    | st.timedeltas() | st.decimals(allow_nan=False) | st.uuids()
    | st.sampled_from([*Color, *Level, Perm.READ, Perm.READ | Perm.WRITE])
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3) | st.builds(Point, inner, inner)
    | st.builds(Tag, inner) | st.builds(lambda c: Sku(code=c), inner),
    max_leaves=8,
)


def _objects(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def offer(seller: Any, price: Any, seen: Any) -> Offer:
        value = Offer(seller, price)
        value.seen = seen
        return value

    return (
        st.builds(lambda n, p, e: Product(name=n, price=p, extra=e), inner, inner, inner)
        | st.builds(lambda n: Product(name=n), inner)
        | st.builds(offer, inner, inner, inner) | st.builds(Slotted, inner)
        | st.builds(Review, inner, inner) | st.builds(Outer.Inner, inner)
        | st.builds(lambda t, p: Listing(title=t, price=p), inner, inner)
        | st.builds(lambda t: Listing(title=t), inner)  # price unset: not in model_fields_set
        | st.builds(Crumbs, inner)
        | st.builds(lambda k, extra: Loose(**({"kind": k} if k is not None else {}), **extra),
                    inner, st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9]{0,5}\Z"), inner, max_size=2))
    )


values = st.recursive(
    hashables,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(), inner, max_size=3)
    | st.dictionaries(hashables, inner, max_size=3)
    | st.sets(hashables, max_size=3) | _objects(inner),
    max_leaves=12,
)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(max_examples=400, deadline=None)
@given(values)
def test_every_allowed_kind_comes_back_equal_and_of_the_same_type(assert_same, value):
    entry = json.dumps(encode_value(value, "meta"))  # what the codec stores
    assert_same(value, decode_value(json.loads(entry)))


@given(st.dictionaries(st.text(), st.integers() | st.text() | st.none(), max_size=4))
def test_json_data_is_written_as_it_is(data):
    if not any(key.startswith("$") for key in data):
        assert encode_value(data, "meta") == data


def test_plain_json_stays_small():
    assert encode_value({"depth": 2, "tags": ["a"]}, "meta") == {"depth": 2, "tags": ["a"]}
    assert encode_value(dt.datetime(2026, 1, 2, 3, 4, 5), "m") == {"$dt": "2026-01-02T03:04:05"}
    assert encode_value(Product(name="x"), "m") == {"$o": [f"{__name__}:Product", {"name": "x"}]}


def test_item_field_order_and_unset_fields_survive(assert_same):
    item = Product(price=3, name="n")
    decoded = decode_value(encode_value(item, "m"))
    assert list(decoded) == ["price", "name"] and "extra" not in decoded
    assert_same(item, decoded)


@dataclasses.dataclass
class Lazy:
    a: Any
    b: Any = dataclasses.field(init=False)  # set later by whoever uses it, or never


def test_dataclass_field_never_set_stays_unset():
    decoded = decode_value(encode_value(Lazy("s"), "m"))
    assert type(decoded) is Lazy and decoded.a == "s" and not hasattr(decoded, "b")


def test_other_tzinfo_keeps_the_instant():
    class Plus2(dt.tzinfo):
        def utcoffset(self, d):
            return dt.timedelta(hours=2)

        def dst(self, d):
            return None

    value = dt.datetime(2026, 5, 1, 12, tzinfo=Plus2())
    decoded = decode_value(encode_value(value, "m"))
    assert decoded == value and decoded.utcoffset() == dt.timedelta(hours=2)


@pytest.mark.parametrize(
    "value, where",
    [
        ({"item": {"when": object()}}, "cb_kwargs['item']['when'] is a builtins.object"),
        ({"item": Product(name=[1, object()])}, "cb_kwargs['item']['name'][1] is a builtins.object"),
        ({"o": Offer(seller={1: lambda: 0})}, "cb_kwargs['o'].seller[1] is a builtins.function"),
        ({"s": {Point(1, object())}}, "cb_kwargs['s'][0].y is a builtins.object"),
    ],
)
def test_unqueueable_value_names_its_path_and_the_fix(value, where):
    with pytest.raises(UnencodableValue, match=re.escape(where)) as info:
        encode_value(value, "cb_kwargs")
    assert "HERMIT_QUEUE_CODEC" in str(info.value) and "dataclass" in str(info.value)


def test_class_defined_in_a_function_is_refused_with_the_fix():
    @dataclasses.dataclass
    class Local:
        a: int

    with pytest.raises(UnencodableValue, match=r"meta\['x'\] is a .*Local.*define it at module level"):
        encode_value({"x": Local(1)}, "meta")


def test_a_model_with_every_field_set_is_written_without_its_set_of_fields():
    ref = f"{__name__}:Listing"
    assert encode_value(Listing(title="x", price=1), "m") == {"$o": [ref, {"title": "x", "price": 1}]}
    assert encode_value(Listing(title="x"), "m") == {"$o": [ref, {"title": "x", "price": None}, ["title"]]}


class Checked(pydantic.BaseModel):
    """Its validators record every call: none may run when it comes back from the queue."""

    name: str
    _seen: int = pydantic.PrivateAttr(default=0)

    @pydantic.field_validator("name")
    @classmethod
    def check_name(cls, value: str) -> str:
        CALLS.append("field_validator")
        return value

    @pydantic.model_validator(mode="after")
    def check_model(self) -> Checked:
        CALLS.append("model_validator")
        return self


def test_a_model_comes_back_through_model_construct_without_validation(calls, assert_same):
    model, expected = Checked(name="lamp"), Checked(name="lamp")
    model._seen = 3
    entry = json.dumps(encode_value(model, "meta"))
    calls.clear()
    decoded = decode_value(json.loads(entry))
    assert calls == []  # no validator ran
    assert_same(expected, decoded)
    assert decoded._seen == 0  # private attributes are not queued: they come back at their defaults
    # A value its validators would refuse comes back as it was stored: nothing checks it.
    assert decode_value({"$o": [f"{__name__}:Checked", {"name": 7}]}).name == 7 and calls == []


@pytest.mark.parametrize(
    "model, where",
    [
        (Loose(_x=1), "meta['x'] is a tests.crawler.queue.test_values.Loose with an extra field '_x'"),
        (Listing(title=Loose(kind=object())), "meta['x'].title.kind is a builtins.object"),
    ],
)
def test_a_model_that_cant_be_queued_names_its_path(model, where):
    with pytest.raises(UnencodableValue, match=re.escape(where)):
        encode_value({"x": model}, "meta")


# Refusals: nothing but allowed classes is ever loaded, built or called ---------

CALLS: list[str] = []


class Plain:
    """Not an Item, dataclass or attrs class: building it would record a call."""

    def __new__(cls, *args, **kwargs):
        CALLS.append("Plain.__new__")
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        CALLS.append("Plain.__init__")


def record_call(*args, **kwargs):
    CALLS.append("record_call")


class LooksLikeAModel:
    """Not a pydantic model, though it has a ``model_construct``."""

    model_fields: dict[str, Any] = {}
    model_config: dict[str, Any] = {}

    @classmethod
    def model_construct(cls, *args, **kwargs):
        CALLS.append("LooksLikeAModel.model_construct")


@pytest.fixture
def calls():
    CALLS.clear()
    yield CALLS
    CALLS.clear()


@pytest.mark.parametrize(
    "data, reason",
    [
        ({"$o": [f"{__name__}:Plain", {}]}, "is not a scrapy Item, dataclass or attrs class"),
        ({"$o": [f"{__name__}:record_call", {}]}, "is not a scrapy Item, dataclass or attrs class"),
        ({"$o": ["os:system", {"command": "true"}]}, "is not a scrapy Item"),
        ({"$o": ["builtins:eval", {}]}, "is not a scrapy Item"),
        ({"$e": [f"{__name__}:Plain", 1]}, "is not an Enum"),
        ({"$e": [f"{__name__}:record_call", 1]}, "is not an Enum"),
        ({"$o": [f"{__name__}:Plain.__init__", {}]}, "special attribute"),
        ({"$o": [f"{__name__}:Product.__class__", {}]}, "special attribute"),
        ({"$o": [f"{__name__}:Offer", {"seller": 1, "__class__": 2}]}, "no field '__class__'"),
        ({"$o": [f"{__name__}:Nowhere", {}]}, "no 'Nowhere'"),
        ({"$o": [f"{__name__}:LooksLikeAModel", {}]}, "nor a pydantic model"),
        ({"$o": ["pydantic:BaseModel.model_construct", {}]}, "nor a pydantic model"),
        ({"$o": [f"{__name__}:Listing", {"title": 1, "nope": 2}]}, "no field 'nope'"),
        ({"$o": [f"{__name__}:Loose", {"_fields_set": 1}]}, "starting with '_'"),
        ({"$o": [f"{__name__}:Listing", {"title": 1}, "title"]}, "not a list of names"),
        ({"$o": [f"{__name__}:Listing", {"title": 1}, ["price"]]}, "'price' is set but has no value"),
        ({"$o": [f"{__name__}:Offer", {"seller": 1}, ["seller"]]}, "not a pydantic model"),
        ({"$o": ["no-colon", {}]}, "not a module:qualname"),
        ({"$zz": 1}, "unknown tag"),
        ({"$td": [1, "2", 3]}, "not an integer"),
    ],
)
def test_entries_naming_other_things_are_refused_and_nothing_is_called(calls, data, reason):
    with pytest.raises(UndecodableValue, match=reason):
        decode_value({"meta": data})
    assert calls == []


def test_an_item_given_an_undeclared_field_is_refused():
    with pytest.raises(KeyError, match="does not support field: evil"):
        decode_value({"$o": [f"{__name__}:Product", {"evil": 1}]})
