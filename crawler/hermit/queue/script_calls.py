"""Calling the queue's Lua scripts, on a client or in a pipeline, by SHA.

A script is sent by its SHA1 (EVALSHA), its text only where the server lacks it.
redis-py's :class:`~redis.commands.core.Script` does that on a client and in a
single-Redis pipeline, but a Redis Cluster pipeline refuses it: it can't load a
script on the node a command goes to. In a cluster pipeline made by :func:`pipeline`
:func:`run_script` queues EVALSHA, and :func:`execute` sends once more, as EVAL
(which runs it and caches it on that node), each script a node answered NOSCRIPT:
a master just promoted, restarted or added has none. A NOSCRIPT reply means the
script did not run, so sending it again runs it once. The push script is ~30 KB:
sent as text in every write, it cost a cluster its parsing and hashing once per
shard and batch.

A cluster *transaction* gets the text (EVAL) as before: a NOSCRIPT inside MULTI
would fail that one command while the others of the transaction ran.

redis-py 8's cluster pipeline looks up the keys of every command it has no policy
for with a ``COMMAND GETKEYS`` round trip to one node, EVAL and EVALSHA included,
although their keys are in their arguments: a pipeline made by :func:`pipeline`
knows them as keyed commands, which it routes by those keys without asking.
"""

from __future__ import annotations

import weakref
from typing import Any

import redis
from redis._parsers.commands import CommandPolicies, RequestPolicy, ResponsePolicy
from redis.cluster import ClusterPipeline
from redis.commands.policies import BasePolicyResolver, PolicyResolver, StaticPolicyResolver
from redis.commands.core import Script
from redis.exceptions import NoScriptError

# Per cluster pipeline not yet executed: command position -> (script, keys, args).
_QUEUED: weakref.WeakKeyDictionary[ClusterPipeline, dict[int, tuple[Script, list[str], list[object]]]] = (
    weakref.WeakKeyDictionary())


class _ScriptsAreKeyed(BasePolicyResolver):
    """redis-py's own command policies, with EVAL and EVALSHA as keyed commands."""

    def __init__(self, fallback: PolicyResolver | None = None) -> None:
        keyed = CommandPolicies(request_policy=RequestPolicy.DEFAULT_KEYED,
                                response_policy=ResponsePolicy.DEFAULT_KEYED)
        super().__init__({"core": {"eval": keyed, "evalsha": keyed}}, fallback or StaticPolicyResolver())

    def with_fallback(self, fallback: PolicyResolver) -> PolicyResolver:
        return _ScriptsAreKeyed(fallback)


_SCRIPT_POLICIES = _ScriptsAreKeyed()


def pipeline(client: redis.Redis) -> Any:
    """A pipeline (no transaction) of *client* whose scripts go by SHA, also on a
    cluster: run it with :func:`execute`."""
    pipe = client.pipeline(transaction=False)
    if isinstance(pipe, ClusterPipeline):
        _QUEUED[pipe] = {}
        if hasattr(pipe, "_policy_resolver"):  # RedisCluster.pipeline() passes none on
            pipe._policy_resolver = _SCRIPT_POLICIES
    return pipe


def run_script(script: Script, keys: list[str], args: list[object], client: redis.Redis | None) -> Any:
    """Call *script* on *client* (a client or pipeline; None: the script's own
    client)."""
    if isinstance(client, ClusterPipeline):
        queued = _QUEUED.get(client)
        if queued is None:  # a transaction, or a pipeline not made by pipeline()
            return client.execute_command("EVAL", script.script, len(keys), *keys, *args)
        queued[len(client)] = (script, keys, args)
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    return script(keys=keys, args=args, client=client)


def execute(pipe: Any, *, raise_on_error: bool = True) -> list[Any]:
    """``pipe.execute()``, with the scripts a cluster node lacked sent again as text.
    With *raise_on_error* false, errors come back in place of their replies."""
    if not isinstance(pipe, ClusterPipeline):
        return pipe.execute(raise_on_error=raise_on_error)
    queued = _QUEUED.get(pipe)
    if queued is None:  # a transaction: its scripts went as text
        return pipe.execute(raise_on_error=raise_on_error)
    _QUEUED[pipe] = {}  # executed: its positions start again from 0
    replies = pipe.execute(raise_on_error=False)
    missing = [position for position in queued if isinstance(replies[position], NoScriptError)]
    if missing:
        for position in missing:  # the pipeline was reset: it carries these alone
            script, keys, args = queued[position]
            pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
        for position, reply in zip(missing, pipe.execute(raise_on_error=False)):
            replies[position] = reply
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies
