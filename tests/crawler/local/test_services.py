"""Embedded services restarted when they die: a real Redis, killed, comes back with its data on its port."""

from __future__ import annotations

import pytest
import redis

from hermit.local.services import MAX_FAILED_RESTARTS, ServiceFailed, SupervisedService
from hermit.redis_server import EmbeddedRedis


def test_a_killed_redis_is_started_again_on_its_port_with_its_data(tmp_path):
    server = EmbeddedRedis(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always").start()
    events: list[str] = []
    try:
        service = SupervisedService("embedded Redis", server, events.append)
        redis.Redis.from_url(server.url).set("kept", "yes")
        assert service.check()
        server.kill()
        assert service.check()
        assert redis.Redis.from_url(server.url).get("kept") == b"yes"
        assert service.restarts == 1
        assert events == ["embedded Redis died; starting it again", "embedded Redis started again (restart 1)"]
    finally:
        server.cleanup()


def test_a_service_that_cannot_start_again_is_given_up_after_a_few_tries(tmp_path, monkeypatch):
    monkeypatch.setattr("hermit.local.services.RESTART_INTERVAL_SECONDS", 0.0)
    server = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    service = SupervisedService("embedded Redis", server)
    server.kill()
    # Its binary is gone (an upgrade, a broken venv): every start fails at once.
    server.binary = "/bin/false"
    try:
        for _ in range(MAX_FAILED_RESTARTS - 1):
            assert not service.check()
        with pytest.raises(ServiceFailed, match="embedded Redis died and could not be started again"):
            service.check()
    finally:
        server.cleanup()
