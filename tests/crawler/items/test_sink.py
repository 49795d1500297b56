"""The item pipeline: off when HERMIT_ITEMS_ENABLED says so (a bad value named), and a
clear error without Hermit's scheduler."""

from __future__ import annotations

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from hermit.items.sink import RedisItemSink, decode_item
from hermit.setting_spec import InvalidValue


def test_items_off_leaves_the_pipeline_out_and_a_bad_value_is_named():
    with pytest.raises(NotConfigured, match="HERMIT_ITEMS_ENABLED"):
        RedisItemSink.from_crawler(get_crawler(settings_dict={"HERMIT_ITEMS_ENABLED": False}))
    with pytest.raises(InvalidValue, match="HERMIT_ITEMS_ENABLED"):
        RedisItemSink.from_crawler(get_crawler(settings_dict={"HERMIT_ITEMS_ENABLED": "maybe"}))


def test_without_hermits_scheduler_an_item_is_a_clear_error():
    sink = RedisItemSink.from_crawler(get_crawler())
    with pytest.raises(RuntimeError, match="needs SCHEDULER = 'hermit.worker.scheduler.HermitScheduler'"):
        sink.process_item({"n": 1})


def test_a_stream_entry_decodes_to_its_item():
    assert decode_item({b"item": b'{"name":"caf\\u00e9","n":1}'}) == {"name": "café", "n": 1}
