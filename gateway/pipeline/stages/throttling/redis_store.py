"""The shared counter store: one atomic Lua script in Redis decides all of a request's limits.

Role in the pipeline: called by the throttling stage (order 70) through
:class:`gateway.pipeline.stages.throttling.service.ThrottleService` when ``redis_url`` is set. It runs exactly the
algorithm of :class:`gateway.pipeline.stages.throttling.store.LocalStore` server-side:

* one ``EVALSHA`` carries every key of a request (one round trip), with a ``SCRIPT LOAD`` + retry when
  Redis answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``); requests that arrive in the same
  event-loop iteration share that call (the script decides them one after the other);
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

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from gateway.pipeline.stages.throttling.store import Check, Decision

# One script call decides a whole *batch* of requests (those that arrived in one event-loop iteration),
# each request atomically and in arrival order, exactly as if each had its own EVALSHA.
# KEYS: the keys of request 1, then of request 2, ... ARGV[1]: the requests joined by "|", each a list of
# "limit,period_ms,mode,anchor_ms" (one per key) joined by ";". mode 0 = token bucket, 1 = window.
# Hash fields: v = used level (bucket) or count (window); s = last update ms (bucket) or window index;
# a = window anchor ms.
# Reply: one string, per request "allowed,failed,retry_ms,remaining_1,...,remaining_n" joined by "|"
# (failed is 1-based, 0 when allowed).
ADMIT_LUA = """
local MAX_TTL = 34560000000  -- 400 days: longer periods keep their counter this long (and stay integers)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local results = {}
local base = 0
for req in string.gmatch(ARGV[1], '[^|]+') do
  local spec = {}
  for a, b, c, d in string.gmatch(req, '(%-?%d+),(%-?%d+),(%-?%d+),(%-?%d+)') do
    spec[#spec + 1] = {tonumber(a), tonumber(b), tonumber(c), tonumber(d)}
  end
  local n = #spec
  local vals, stamps, anchors, ends, rem = {}, {}, {}, {}, {}
  local failed, retry = 0, 0
  for i = 1, n do
    local limit, period, mode, anchor = spec[i][1], spec[i][2], spec[i][3], spec[i][4]
    local st = redis.call('HMGET', KEYS[base + i], 'v', 's', 'a')
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
  local out
  if failed > 0 then
    out = {0, failed, math.ceil(retry)}
    for i = 1, n do out[3 + i] = rem[i] end
  else
    out = {1, 0, 0}
    for i = 1, n do
      local key, period = KEYS[base + i], spec[i][2]
      if spec[i][3] == 0 then
        redis.call('HSET', key, 'v', tostring(vals[i] + 1), 's', tostring(now))
        redis.call('PEXPIRE', key, math.min(math.ceil(period) + 1000, MAX_TTL))
      else
        redis.call('HSET', key, 'v', tostring(vals[i] + 1), 's', tostring(stamps[i]), 'a', tostring(anchors[i]))
        redis.call('PEXPIRE', key, math.min(math.ceil(ends[i] + period - now), MAX_TTL))
      end
      local r = rem[i] - 1
      if r < 0 then r = 0 end
      out[3 + i] = r
    end
  end
  results[#results + 1] = table.concat(out, ',')
  base = base + n
end
return table.concat(results, '|')
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


Pending = tuple[list[str], str, "asyncio.Future[Decision]"]


def _decision(reply: bytes) -> Decision:
    parts = reply.split(b",")
    # retry_ms may be printed as "1.8e+17" by Lua for very long periods
    return Decision(parts[0] == b"1", int(parts[1]) - 1, int(float(parts[2])), [int(x) for x in parts[3:]], "redis")


class RedisStore:
    """Admits requests' checks in Redis; raises on any Redis problem (the service decides).

    Requests that arrive in the same event-loop iteration are coalesced into ONE script call (one
    command to encode, one reply to parse, one pooled connection): the script decides each request
    atomically and in order, so the outcome is the same as one EVALSHA per request. A caller that gives
    up (deadline) just stops waiting on its future: the socket I/O is never cancelled half-way, so a
    connection can never be left with an unread reply.
    """

    MAX_BATCH = 256  # requests per script call: bounds how long one call keeps Redis busy

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.script_loads = 0
        self.batches = 0
        self._pending: list[Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def admit(self, checks: Sequence[Check]) -> asyncio.Future[Decision]:
        spec = ";".join(f"{limit},{period},{mode},{anchor}" for _k, limit, period, mode, anchor in checks)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Decision] = loop.create_future()
        self._pending.append(([c[0] for c in checks], spec, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_batches)
        return fut

    def _start_batches(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for i in range(0, len(pending), self.MAX_BATCH):
            task = loop.create_task(self._run_batch(pending[i:i + self.MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[Pending]) -> None:
        self.batches += 1
        keys: list[str] = []
        for k, _spec, _fut in batch:
            keys.extend(k)
        spec = "|".join(s for _k, s, _f in batch)
        try:
            try:
                reply = await self.client.evalsha(ADMIT_SHA, len(keys), *keys, spec)
            except NoScriptError:  # Redis restarted or SCRIPT FLUSH: load once, then retry
                self.script_loads += 1
                await self.client.script_load(ADMIT_LUA)
                reply = await self.client.evalsha(ADMIT_SHA, len(keys), *keys, spec)
            decisions = [_decision(part) for part in reply.split(b"|")]
            if len(decisions) != len(batch):
                raise RuntimeError(f"throttle script answered {len(decisions)} of {len(batch)} requests")
        except Exception as exc:
            for _k, _s, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_k, _s, fut), decision in zip(batch, decisions, strict=True):
            if not fut.done():
                fut.set_result(decision)

    async def load_script(self) -> None:
        await self.client.script_load(ADMIT_LUA)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def reset_connections(self) -> None:
        await self.client.connection_pool.disconnect()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.aclose()
