"""The shared counter store: one atomic Lua script in Redis decides all of a request's limits.

Role in the pipeline: called by the throttling stage (order 70) through
:class:`gateway.throttling.service.ThrottleService` when ``redis_url`` is set. It runs exactly the
algorithm of :class:`gateway.throttling.store.LocalStore` server-side:

* one ``EVALSHA`` per request carries every key of the request (one round trip), with an ``EVAL``
  fallback when Redis answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``);
* the script reads ``TIME`` from Redis, so the clocks of the gateway nodes do not matter;
* it checks every key first and writes only when all pass (rejections consume nothing);
* every written key gets an expiry (a bucket: the time to refill; a window: its end plus one period),
  so idle per-IP / per-user counters disappear by themselves.

Key layout and Redis Cluster: see docs/throttling.md ("Redis keys").
"""

from __future__ import annotations

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


def make_client(url: str, timeout_s: float, max_connections: int = 512) -> Redis:
    """A client that never retries and never waits longer than ``timeout_s`` on a socket: the caller's
    deadline, not redis-py's retry policy, decides when to give up."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,
        health_check_interval=0,
    )


class RedisStore:
    """Admits a request's checks with one EVALSHA. Raises on any Redis problem (the service decides)."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.script_loads = 0

    async def admit(self, checks: Sequence[Check]) -> Decision:
        keys: list[str] = []
        args: list[Any] = []
        for key, limit, period, mode, anchor in checks:
            keys.append(key)
            args.extend((limit, period, mode, anchor))
        try:
            reply = await self.client.evalsha(ADMIT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            self.script_loads += 1
            reply = await self.client.eval(ADMIT_LUA, len(keys), *keys, *args)
        allowed = int(reply[0]) == 1
        return Decision(allowed, int(reply[1]) - 1, int(reply[2]), [int(x) for x in reply[3:]], "redis")

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def reset_connections(self) -> None:
        await self.client.connection_pool.disconnect()

    async def close(self) -> None:
        await self.client.aclose()
