"""The shared counter store: one atomic Lua script in Redis decides all of a request's limits.

Role in the pipeline: called by the throttling stage (order 70) through
:class:`gateway.throttling.service.ThrottleService` when ``redis_url`` is set. It runs exactly the
algorithm of :class:`gateway.throttling.store.LocalStore` server-side:

* one ``EVALSHA`` per request carries every key of the request (one round trip), with a
  ``SCRIPT LOAD`` + retry when Redis answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``);
  concurrent requests are coalesced into one pipeline per event-loop iteration;
* the script reads ``TIME`` from Redis, so the clocks of the gateway nodes do not matter;
* it checks every key first and writes only when all pass (rejections consume nothing);
* every written key gets an expiry (a bucket: the time to refill; a window: its end plus one period),
  so idle per-IP / per-user counters disappear by themselves.

Key layout and Redis Cluster: see docs/throttling.md ("Redis keys").
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from gateway.throttling.store import Check, Decision

# KEYS[i]: counter keys; ARGV: per key 4 values (limit, period_ms, mode 0=bucket 1=window, anchor_ms).
# Hash fields: v = used level (bucket) or count (window); s = last update ms (bucket) or window index;
# a = window anchor ms.
# Reply: {allowed 0|1, failed index (1-based, 0 if allowed), retry_ms, remaining_1 .. remaining_n}.
ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local vals, stamps, anchors, ends, rem = {}, {}, {}, {}, {}
local failed, retry = 0, 0
for i = 1, n do
  local b = (i - 1) * 4
  local limit = tonumber(ARGV[b + 1])
  local period = tonumber(ARGV[b + 2])
  local mode = tonumber(ARGV[b + 3])
  local anchor = tonumber(ARGV[b + 4])
  local st = redis.call('HMGET', KEYS[i], 'v', 's', 'a')
  if mode == 0 then
    local used = 0
    if st[1] then
      used = tonumber(st[1]) - (now - tonumber(st[2])) * limit / period
      if used < 0 then used = 0 end
    end
    vals[i] = used
    rem[i] = math.floor(limit - used)
    if rem[i] < 0 then rem[i] = 0 end
    if used + 1 > limit and failed == 0 then
      failed = i
      retry = (used + 1 - limit) * period / limit
    end
  else
    local a = anchor
    if a < 0 then
      if st[3] then a = tonumber(st[3]) else a = now end
    end
    local idx, e
    if now < a then
      idx = -1
      e = a
    else
      idx = math.floor((now - a) / period)
      e = a + (idx + 1) * period
    end
    local count = 0
    if st[1] and tonumber(st[2]) == idx and tonumber(st[3]) == a then count = tonumber(st[1]) end
    vals[i] = count
    stamps[i] = idx
    anchors[i] = a
    ends[i] = e
    rem[i] = limit - count
    if rem[i] < 0 then rem[i] = 0 end
    if count >= limit and failed == 0 then
      failed = i
      retry = e - now
    end
  end
end
if failed > 0 then
  local out = {0, failed, math.ceil(retry)}
  for i = 1, n do out[3 + i] = rem[i] end
  return out
end
local out = {1, 0, 0}
for i = 1, n do
  local b = (i - 1) * 4
  local period = tonumber(ARGV[b + 2])
  if tonumber(ARGV[b + 3]) == 0 then
    redis.call('HSET', KEYS[i], 'v', tostring(vals[i] + 1), 's', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil(period) + 1000)
  else
    redis.call('HSET', KEYS[i], 'v', tostring(vals[i] + 1), 's', tostring(stamps[i]), 'a', tostring(anchors[i]))
    redis.call('PEXPIRE', KEYS[i], math.ceil(ends[i] + period - now))
  end
  local r = rem[i] - 1
  if r < 0 then r = 0 end
  out[3 + i] = r
end
return out
"""

ADMIT_SHA = hashlib.sha1(ADMIT_LUA.encode()).hexdigest()


def make_client(url: str, socket_timeout_s: float, max_connections: int = 64) -> Redis:
    """A client that never retries: the caller's deadline, not redis-py's retry policy, decides when to
    give up. The socket timeout only bounds how long a batch task may linger on a hung server."""
    return Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,
        health_check_interval=0,
        lib_name=None,  # no CLIENT SETINFO round trips when a connection opens
        lib_version=None,
    )


Pending = tuple[list[str], list[Any], "asyncio.Future[Decision]"]


def _decision(reply: Any) -> Decision:
    return Decision(int(reply[0]) == 1, int(reply[1]) - 1, int(reply[2]), [int(x) for x in reply[3:]], "redis")


class RedisStore:
    """Admits a request's checks with one EVALSHA; raises on any Redis problem (the service decides).

    Requests that arrive in the same event-loop iteration are coalesced into one pipeline (one write,
    one read, one pooled connection) — each EVALSHA in it is still its own atomic decision. A caller
    that gives up (deadline) just stops waiting on its future: the socket I/O is never cancelled
    half-way, so a connection can never be left with an unread reply.
    """

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.script_loads = 0
        self.batches = 0
        self._pending: list[Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def admit(self, checks: Sequence[Check]) -> asyncio.Future[Decision]:
        keys: list[str] = []
        args: list[Any] = []
        for key, limit, period, mode, anchor in checks:
            keys.append(key)
            args.extend((limit, period, mode, anchor))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Decision] = loop.create_future()
        self._pending.append((keys, args, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_batch)
        return fut

    def _start_batch(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._run_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[Pending]) -> None:
        self.batches += 1
        try:
            replies = await self._execute(batch, ADMIT_SHA)
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:  # Redis restarted or SCRIPT FLUSH: load once, then retry only those
                self.script_loads += 1
                await self.client.script_load(ADMIT_LUA)
                again = await self._execute([batch[i] for i in missing], ADMIT_SHA)
                for i, r in zip(missing, again, strict=True):
                    replies[i] = r
        except Exception as exc:
            for _k, _a, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_k, _a, fut), reply in zip(batch, replies, strict=True):
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(_decision(reply))

    async def _execute(self, batch: list[Pending], sha: str) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args, _fut in batch:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def reset_connections(self) -> None:
        await self.client.connection_pool.disconnect()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.aclose()
