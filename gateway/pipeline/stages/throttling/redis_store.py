"""The shared counter store: one atomic Lua script in Redis decides a request's limits.

Role in the pipeline: called by the throttling stage (order 70) through
:class:`gateway.pipeline.stages.throttling.service.ThrottleService` when a Redis is configured (any
``redis_mode``: one instance, a Redis Cluster, or a primary behind Sentinel; the client comes from
:mod:`gateway.lib.redis_conn`). It runs exactly the algorithm of
:class:`gateway.pipeline.stages.throttling.store.LocalStore` server-side:

* one ``EVALSHA`` carries every key of a request (one round trip), with a ``SCRIPT LOAD`` + retry when
  Redis answers ``NOSCRIPT`` (after a restart, a ``SCRIPT FLUSH`` or a failover to a replica, whose
  script cache is empty); requests that arrive in the same event-loop iteration share that call (the
  script decides them one after the other);
* the script reads ``TIME`` from Redis, so the clocks of the gateway nodes do not matter;
* it checks every key first and writes only when all pass (rejections consume nothing);
* an admitted request may also take a few more units of a bucket for the calling node (a token lease, asked
  per key by :mod:`gateway.pipeline.stages.throttling.lease`), never more than the bucket has left;
* every written key gets an expiry (a bucket: the time to refill; a window: its end plus one period),
  so idle per-IP / per-user counters disappear by themselves.

**Redis Cluster.** A script may only touch keys of one hash slot. Every counter key carries a hash tag
(``{policy scope}``, ``{api}``, ``{quota:app}``), so the checks of a request fall in one to three slots.
Requests are batched *per slot*. A request whose checks span several slots (a policy plus the default
per-API ceiling or a credential quota) is decided by one call per slot, run concurrently: it is admitted
when every slot admits it; otherwise the units taken in the slots that did admit it are given back by a
second script (``REFUND_LUA``). So a limit is never exceeded; the only cost is that, for one round trip, a
unit may be held for a request that ends up rejected. ``SCRIPT LOAD`` goes to every master (redis-py
sends it to all primaries), ``MOVED`` / ``ASK`` are followed by redis-py.

Key layout: see docs/throttling.md ("Redis keys") and docs/operations-cluster.md.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.crc import key_slot
from redis.exceptions import NoScriptError

from gateway.lib.redis_conn import Client, RedisTarget, is_cluster
from gateway.lib.redis_conn import close as close_client
from gateway.lib.redis_conn import make_client as make_redis_client
from gateway.lib.redis_conn import ping as ping_client
from gateway.lib.redis_conn import reset as reset_client
from gateway.lib.resp import for_client as fast_connection_for
from gateway.pipeline.stages.throttling.store import Check, Decision

# One script call decides a whole *batch* of requests (those that arrived in one event-loop iteration),
# each request atomically and in arrival order, exactly as if each had its own EVALSHA.
# KEYS: the keys of request 1, then of request 2, ... ARGV[1]: the requests joined by "|", each a list of
# "limit,period_ms,mode,anchor_ms,lease" (one per key) joined by ";". mode 0 = token bucket, 1 = window.
# lease > 0 (buckets only): when the request is admitted, also take up to that many more units from the
# key for the calling node to spend locally (token lease, docs/throttling.md); 0 = none.
# Hash fields: v = used level (bucket) or count (window); s = last update ms (bucket) or window index;
# a = window anchor ms.
# Reply: one string, per request "allowed,failed,retry_ms,remaining_1,...,remaining_n" joined by "|"
# (failed is 1-based, 0 when allowed; remaining after the leased units), followed by
# ";granted_1,...,granted_n" when the request asked for a lease.
ADMIT_LUA = """
local MAX_TTL = 34560000000  -- 400 days: longer periods keep their counter this long (and stay integers)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local results = {}
local base = 0
for req in string.gmatch(ARGV[1], '[^|]+') do
  local spec = {}
  local asked = false
  for a, b, c, d, e in string.gmatch(req, '(%-?%d+),(%-?%d+),(%-?%d+),(%-?%d+),(%d+)') do
    local lease = tonumber(e)
    if lease > 0 then asked = true end
    spec[#spec + 1] = {tonumber(a), tonumber(b), tonumber(c), tonumber(d), lease}
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
    local grants = {}
    for i = 1, n do
      local key, period = KEYS[base + i], spec[i][2]
      local grant = 0
      if spec[i][3] == 0 then
        if spec[i][5] > 0 then
          grant = rem[i] - 1
          if grant > spec[i][5] then grant = spec[i][5] end
          if grant < 0 then grant = 0 end
        end
        redis.call('HSET', key, 'v', tostring(vals[i] + 1 + grant), 's', tostring(now))
        redis.call('PEXPIRE', key, math.min(math.ceil(period) + 1000, MAX_TTL))
      else
        redis.call('HSET', key, 'v', tostring(vals[i] + 1), 's', tostring(stamps[i]), 'a', tostring(anchors[i]))
        redis.call('PEXPIRE', key, math.min(math.ceil(ends[i] + period - now), MAX_TTL))
      end
      grants[i] = grant
      local r = rem[i] - 1 - grant
      if r < 0 then r = 0 end
      out[3 + i] = r
    end
    if asked then
      results[#results + 1] = table.concat(out, ',') .. ';' .. table.concat(grants, ',')
      out = nil
    end
  end
  if out then results[#results + 1] = table.concat(out, ',') end
  base = base + n
end
return table.concat(results, '|')
"""

ADMIT_SHA = hashlib.sha1(ADMIT_LUA.encode()).hexdigest()

# Give back one unit on each key of ONE request (cluster mode: the slots that admitted a request another
# slot rejected). KEYS and ARGV[1] as for one request of ADMIT_LUA. A bucket drains at the same rate from
# a lower level; a window is decremented only while it is still the window the unit was taken in.
REFUND_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local i = 0
for a, b, c, d in string.gmatch(ARGV[1], '(%-?%d+),(%-?%d+),(%-?%d+),(%-?%d+)') do
  i = i + 1
  local limit, period, mode, anchor = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  local key = KEYS[i]
  local st = redis.call('HMGET', key, 'v', 's', 'a')
  if st[1] then
    if mode == 0 then
      local used = tonumber(st[1]) - (now - tonumber(st[2])) * limit / period - 1
      if used < 0 then used = 0 end
      redis.call('HSET', key, 'v', tostring(used), 's', tostring(now))
    else
      local w = anchor
      if w < 0 then w = tonumber(st[3]) or now end
      local idx = -1
      if now >= w then idx = math.floor((now - w) / period) end
      if tonumber(st[2]) == idx and tonumber(st[3]) == w and tonumber(st[1]) > 0 then
        redis.call('HSET', key, 'v', tostring(tonumber(st[1]) - 1))
      end
    end
  end
end
return i
"""

REFUND_SHA = hashlib.sha1(REFUND_LUA.encode()).hexdigest()

# Add usage that Redis did not see (calls the local fallback admitted while Redis was down), so the shared
# counters do not offer a full burst again right after a failover. KEYS as above; ARGV[1] the specs of the
# keys (one request's format), ARGV[2] the units to add, comma-separated. Capped at each limit.
RECORD_LUA = """
local MAX_TTL = 34560000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local adds = {}
for x in string.gmatch(ARGV[2], '[^,]+') do adds[#adds + 1] = tonumber(x) end
local i = 0
for a, b, c, d in string.gmatch(ARGV[1], '(%-?%d+),(%-?%d+),(%-?%d+),(%-?%d+)') do
  i = i + 1
  local limit, period, mode, anchor = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  local key, add = KEYS[i], adds[i]
  local st = redis.call('HMGET', key, 'v', 's', 'a')
  if mode == 0 then
    local used = 0
    if st[1] then
      used = tonumber(st[1]) - (now - tonumber(st[2])) * limit / period
      if used < 0 then used = 0 end
    end
    used = math.min(limit, used + add)
    redis.call('HSET', key, 'v', tostring(used), 's', tostring(now))
    redis.call('PEXPIRE', key, math.min(math.ceil(period) + 1000, MAX_TTL))
  else
    local w = anchor
    if w < 0 then w = tonumber(st[3]) or now end
    local idx, e = -1, w
    if now >= w then
      idx = math.floor((now - w) / period)
      e = w + (idx + 1) * period
    end
    local count = 0
    if st[1] and tonumber(st[2]) == idx and tonumber(st[3]) == w then count = tonumber(st[1]) end
    count = math.min(limit, count + add)
    redis.call('HSET', key, 'v', tostring(count), 's', tostring(idx), 'a', tostring(w))
    redis.call('PEXPIRE', key, math.min(math.ceil(e + period - now), MAX_TTL))
  end
end
return i
"""

RECORD_SHA = hashlib.sha1(RECORD_LUA.encode()).hexdigest()


def make_client(target: RedisTarget | str, socket_timeout_s: float, max_connections: int = 64) -> Client:
    """A client that never retries: the caller's deadline, not redis-py's retry policy, decides when to
    give up. The socket timeout only bounds how long a batch task may linger on a hung server."""
    if isinstance(target, str):
        target = RedisTarget(mode="single", url=target)
    return make_redis_client(target, socket_timeout=socket_timeout_s, connect_timeout=socket_timeout_s,
                             retries=0, max_connections=max_connections)


Pending = tuple[list[str], str, "asyncio.Future[Decision]"]
Part = tuple[list[int], list[str], str, "asyncio.Future[Decision]"]  # check indexes, keys, spec, decision


def _decision(reply: bytes) -> Decision:
    head, _, leased = reply.partition(b";")
    parts = head.split(b",")
    # retry_ms may be printed as "1.8e+17" by Lua for very long periods
    return Decision(parts[0] == b"1", int(parts[1]) - 1, int(float(parts[2])), [int(x) for x in parts[3:]], "redis",
                    [int(x) for x in leased.split(b",")] if leased else None)


class RedisStore:
    """Admits requests' checks in Redis; raises on any Redis problem (the service decides).

    Requests that arrive in the same event-loop iteration are coalesced into ONE script call per hash
    slot (one slot in single/sentinel mode): the script decides each request atomically and in order, so
    the outcome is the same as one EVALSHA per request. A caller that gives up (deadline) just stops
    waiting on its future: the socket I/O is never cancelled half-way, so a connection can never be left
    with an unread reply.
    """

    MAX_BATCH = 256  # requests per script call: bounds how long one call keeps Redis busy
    SLOT_CACHE = 4096  # hash tag -> slot, so the CRC is computed once per tag (cluster mode)

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cluster = is_cluster(client)
        self.script_loads = 0
        self.batches = 0
        self.split_requests = 0  # cluster mode: requests whose checks spanned several slots
        self.refunds = 0
        self._pending: dict[int, list[Pending]] = {}
        self._scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._slots: dict[str, int] = {}
        # single server over plain TCP: script calls go through a lean pipelined connection (gateway.lib.resp);
        # redis-py keeps everything else (script loads, pings, cluster, sentinel, TLS)
        self._fast = None if self.cluster else fast_connection_for(client)

    def admit(self, checks: Sequence[Check], leases: Sequence[int] | None = None) -> asyncio.Future[Decision]:
        """Decide ``checks``; ``leases`` (one size per check, buckets only) also asks for units to spend
        locally, answered in ``Decision.granted`` (not for a request split over several cluster slots)."""
        if self.cluster:
            groups = self._slot_groups(checks)
            if len(groups) > 1:
                return self._admit_split(checks, groups)
            slot = next(iter(groups))
        else:
            slot = 0
        if leases is None:
            spec = ";".join([f"{limit},{period},{mode},{anchor},0" for _k, limit, period, mode, anchor in checks])
        else:
            spec = ";".join([f"{c[1]},{c[2]},{c[3]},{c[4]},{n}" for c, n in zip(checks, leases, strict=True)])
        return self._enqueue(slot, [c[0] for c in checks], spec)

    def _enqueue(self, slot: int, keys: list[str], spec: str) -> asyncio.Future[Decision]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Decision] = loop.create_future()
        pending = self._pending.get(slot)
        if pending is None:
            self._pending[slot] = pending = []
        pending.append((keys, spec, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_batches)
        return fut

    def _slot(self, key: str) -> int:
        start = key.find("{")
        end = key.find("}", start + 1) if start >= 0 else -1
        tag = key[start + 1:end] if start >= 0 and end > start + 1 else key
        slot = self._slots.get(tag)
        if slot is None:
            if len(self._slots) >= self.SLOT_CACHE:
                self._slots.clear()
            slot = self._slots[tag] = key_slot(tag.encode())
        return slot

    def _slot_groups(self, checks: Sequence[Check]) -> dict[int, list[int]]:
        """slot -> indexes of the checks whose keys hash to it, in check order."""
        groups: dict[int, list[int]] = {}
        for i, c in enumerate(checks):
            groups.setdefault(self._slot(c[0]), []).append(i)
        return groups

    def _admit_split(self, checks: Sequence[Check], groups: dict[int, list[int]]) -> asyncio.Future[Decision]:
        """One call per slot, concurrently; all must admit, else the admitted slots are refunded."""
        self.split_requests += 1
        loop = asyncio.get_running_loop()
        outer: asyncio.Future[Decision] = loop.create_future()
        parts: list[Part] = []
        for slot, idxs in groups.items():
            keys = [checks[i][0] for i in idxs]
            spec = ";".join(f"{checks[i][1]},{checks[i][2]},{checks[i][3]},{checks[i][4]}" for i in idxs)
            # the admit script takes a lease size per key (none here); the refund script the bare spec
            admit_spec = ";".join(f"{checks[i][1]},{checks[i][2]},{checks[i][3]},{checks[i][4]},0" for i in idxs)
            parts.append((idxs, keys, spec, self._enqueue(slot, keys, admit_spec)))
        self._spawn(self._combine(len(checks), parts, outer))
        return outer

    async def _combine(self, n: int, parts: list[Part], outer: asyncio.Future[Decision]) -> None:
        results = await asyncio.gather(*(p[3] for p in parts), return_exceptions=True)
        decisions = [r for r in results if isinstance(r, Decision)]
        admitted_all = len(decisions) == len(parts) and all(d.allowed for d in decisions)
        if not admitted_all:  # give back what the other slots took for this request
            for (_idxs, keys, spec, _f), r in zip(parts, results, strict=True):
                if isinstance(r, Decision) and r.allowed:
                    self._spawn(self._refund(keys, spec))
        if outer.done():
            return
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            outer.set_exception(errors[0])
            return
        remaining = [0] * n
        failed, retry = -1, 0
        for (idxs, _keys, _spec, _f), d in zip(parts, decisions, strict=True):
            for j, i in enumerate(idxs):
                # a refunded group reports what is left now (its unit is given back)
                remaining[i] = d.remaining[j] + (1 if d.allowed and not admitted_all else 0)
            if not d.allowed:
                i = idxs[d.failed]
                if failed < 0 or i < failed:
                    failed, retry = i, d.retry_ms
        if admitted_all:
            outer.set_result(Decision(True, -1, 0, remaining, "redis"))
        else:
            outer.set_result(Decision(False, failed, retry, remaining, "redis"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refund(self, keys: list[str], spec: str) -> None:
        self.refunds += 1
        try:
            await self._eval(REFUND_SHA, REFUND_LUA, keys, spec)
        except Exception:  # best effort: the unit drains by itself (bucket) or at the window end
            pass

    async def _eval(self, sha: str, lua: str, keys: list[str], *args: str) -> Any:
        try:
            if self._fast is not None:
                return await self._fast.evalsha(sha, len(keys), *keys, *args)
            return await self.client.evalsha(sha, len(keys), *keys, *args)  # type: ignore[misc,unused-ignore]
        except NoScriptError:  # restart, SCRIPT FLUSH or failover to a replica: load (every master), retry
            self.script_loads += 1
            await self.client.script_load(lua)
            return await self.client.evalsha(sha, len(keys), *keys, *args)  # type: ignore[misc,unused-ignore]

    async def add_usage(self, items: Sequence[tuple[Check, int]]) -> None:
        """Add ``units`` to each check's counter (capped at its limit): one script call per hash slot."""
        groups: dict[int, list[tuple[Check, int]]] = {}
        for check, units in items:
            groups.setdefault(self._slot(check[0]) if self.cluster else 0, []).append((check, units))
        for group in groups.values():
            keys = [c[0] for c, _n in group]
            spec = ";".join(f"{c[1]},{c[2]},{c[3]},{c[4]}" for c, _n in group)
            await self._eval(RECORD_SHA, RECORD_LUA, keys, spec, ",".join(str(n) for _c, n in group))

    def _start_batches(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for batch in pending.values():
            for i in range(0, len(batch), self.MAX_BATCH):
                self._spawn(self._run_batch(batch[i:i + self.MAX_BATCH]))

    async def _run_batch(self, batch: list[Pending]) -> None:
        self.batches += 1
        keys: list[str] = []
        for k, _spec, _fut in batch:
            keys.extend(k)
        spec = "|".join(s for _k, s, _f in batch)
        try:
            reply = await self._eval(ADMIT_SHA, ADMIT_LUA, keys, spec)
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
        """Load the scripts (on every master in cluster mode), so first requests skip NOSCRIPT."""
        await self.client.script_load(ADMIT_LUA)
        if self.cluster:
            await self.client.script_load(REFUND_LUA)
        if self._fast is not None:  # connect the script connection too, off the first requests' deadline
            await self._fast.execute("PING")

    async def ping(self) -> bool:
        return await ping_client(self.client)

    async def reset_connections(self) -> None:
        if self._fast is not None:
            self._fast.reset()
        await reset_client(self.client)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._fast is not None:
            await self._fast.close()
        await close_client(self.client)
