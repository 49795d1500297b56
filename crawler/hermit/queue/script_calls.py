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

On a single Redis, a pipeline or transaction made by :func:`pipeline` sends EVALSHA
too, where redis-py's own pipeline first asks ``SCRIPT EXISTS`` for its scripts: a
round trip more per write batch, which a worker makes every turn of its reactor.
A script the server lacks is loaded (``SCRIPT LOAD``) and the commands that failed
with NOSCRIPT are sent again, in their order. Inside MULTI all of a batch's
scripts fail together when the server lost its scripts (a restart, ``SCRIPT FLUSH``);
one could fail alone only if another client had loaded some of them since, and
then it runs a moment later, in the same call.

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
from redis.client import Pipeline
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


def pipeline(client: redis.Redis, *, transaction: bool = False) -> Any:
    """A pipeline of *client* whose scripts go by SHA, also on a cluster: run it with
    :func:`execute`. A *transaction* (MULTI/EXEC) only on a single Redis: a cluster
    transaction sends its scripts as text."""
    pipe = client.pipeline(transaction=transaction)
    if isinstance(pipe, ClusterPipeline):
        if transaction:
            return pipe
        if hasattr(pipe, "_policy_resolver"):  # RedisCluster.pipeline() passes none on
            pipe._policy_resolver = _SCRIPT_POLICIES
    _QUEUED[pipe] = {}
    return pipe


def run_script(script: Script, keys: list[str], args: list[object], client: redis.Redis | None) -> Any:
    """Call *script* on *client* (a client or pipeline; None: the script's own
    client)."""
    queued = _QUEUED.get(client) if isinstance(client, (ClusterPipeline, Pipeline)) else None
    if queued is not None:
        queued[len(client)] = (script, keys, args)
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    if isinstance(client, ClusterPipeline):  # a transaction, or a pipeline not made by pipeline()
        return client.execute_command("EVAL", script.script, len(keys), *keys, *args)
    return script(keys=keys, args=args, client=client)


def execute(pipe: Any, *, raise_on_error: bool = True) -> list[Any]:
    """``pipe.execute()``, with the scripts the server (a cluster node) lacked sent
    again: loaded first on a single Redis, as text on a cluster. With
    *raise_on_error* false, errors come back in place of their replies."""
    queued = _QUEUED.get(pipe)
    if queued is None:  # a cluster transaction (its scripts went as text), or not made by pipeline()
        return pipe.execute(raise_on_error=raise_on_error)
    _QUEUED[pipe] = {}  # executed: its positions start again from 0
    replies = pipe.execute(raise_on_error=False)
    missing = [position for position in queued if isinstance(replies[position], NoScriptError)]
    if missing:
        on_cluster = isinstance(pipe, ClusterPipeline)
        if not on_cluster:
            loader = redis.Redis(connection_pool=pipe.connection_pool)
            for script in {id(queued[position][0]): queued[position][0] for position in missing}.values():
                loader.script_load(script.script)
        for position in missing:  # the pipeline was reset: it carries these alone
            script, keys, args = queued[position]
            if on_cluster:
                pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
            else:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        for position, reply in zip(missing, pipe.execute(raise_on_error=False)):
            replies[position] = reply
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies
