"""Where shared limiters keep their counts: a Redis server that every gostg process and instance
configured with the same ``store.redis.key`` talks to. Each decision is one Lua script (one round
trip, atomic in Redis, on Redis's clock so instances' clocks never matter).

Keys under the prefix (``store.redis.key``, default ``gostg:<kind>:<limiter name>``):

- ``<prefix>:alive`` ZSET: member = one limiter object in one process (``host:pid:random``),
  score = when its heartbeat runs out (ms, Redis time). A member past its score is dead.
- ``<prefix>:conn:$`` / ``<prefix>:conn:ip:<ip>`` HASH: member → that member's open connections
  (climiters). A dead member's field is ignored and deleted by the next acquire.
- ``<prefix>:rate:$`` / ``<prefix>:rate:ip:<ip>`` HASH ``t`` (tokens), ``ts`` (ms): a token
  bucket (rlimiters), expiring once it would be full again.
- ``<prefix>:traffic:$:in`` / ``…:out`` HASH ``t``, ``ts``: the service's byte buckets (limiters),
  from which each process leases a tenth of a second of the rate at a time.
"""
import os
import socket
import time
import uuid

from .common import SERVICE

# the time in ms on Redis's clock (TIME is allowed in scripts: Redis >= 5 replicates effects)
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, ttl = ARGV[1], tonumber(ARGV[2])
"""

#: KEYS alive, count hashes…; ARGV me, ttl, limit per hash → 1 admitted | 0 refused, +2 when this
#: member's heartbeat had run out (its counts may have been deleted: the caller re-asserts them)
ACQUIRE = _NOW + """
local prev = redis.call('ZSCORE', KEYS[1], me)
local lapsed = (not prev) or tonumber(prev) < now
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1)
redis.call('ZADD', KEYS[1], now + ttl, me)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
local flag = 0
if lapsed then flag = 2 end
for i = 2, #KEYS do
  local f = redis.call('HGETALL', KEYS[i])
  local sum = 0
  for j = 1, #f, 2 do
    local s = redis.call('ZSCORE', KEYS[1], f[j])
    if f[j] == me or (s and tonumber(s) >= now) then
      sum = sum + tonumber(f[j + 1])
    else
      redis.call('HDEL', KEYS[i], f[j])
    end
  end
  if sum >= tonumber(ARGV[i + 1]) then return flag end
end
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], me, 1)
  redis.call('PEXPIRE', KEYS[i], ttl * 3)
end
return flag + 1
"""

#: KEYS alive, n released hashes…, held hashes…; ARGV me, ttl, n, old, count per held hash →
#: 1 when this member's heartbeat had run out (nothing applied: the caller re-asserts), else 0.
#: With ``old`` (re-assert): this member is new, ``old`` is retired (its fields deleted, its
#: counts added to the new member's). Only increments touch a live member's fields, so an
#: admission in flight meanwhile is never lost (at worst counted twice until ``old`` expires).
SYNC = _NOW + """
local n, old = tonumber(ARGV[3]), ARGV[4]
if old == '' then
  local prev = redis.call('ZSCORE', KEYS[1], me)
  if (not prev) or tonumber(prev) < now then return 1 end
  for i = 2, n + 1 do
    if redis.call('HINCRBY', KEYS[i], me, -1) <= 0 then redis.call('HDEL', KEYS[i], me) end
  end
else
  redis.call('ZREM', KEYS[1], old)
end
redis.call('ZADD', KEYS[1], now + ttl, me)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
for i = n + 2, #KEYS do
  local c = tonumber(ARGV[i - n + 3])
  if old ~= '' then
    redis.call('HDEL', KEYS[i], old)
    if c > 0 then redis.call('HINCRBY', KEYS[i], me, c) end
  end
  if c > 0 then redis.call('PEXPIRE', KEYS[i], ttl * 3) end
end
return 0
"""

#: KEYS alive, buckets…; ARGV me, ttl, then rate and burst per bucket → {1 taken | 0 refused,
#: live members}. A refused request spends nothing (as the local RateLimiter).
RATE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1)
redis.call('ZADD', KEYS[1], now + ttl, me)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
local peers = redis.call('ZCARD', KEYS[1])
local tokens = {}
for i = 2, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local s = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tk, ts = tonumber(s[1]), tonumber(s[2])
  if not tk or not ts then tk, ts = burst, now end
  if now > ts then tk = math.min(burst, tk + (now - ts) * rate / 1000) end
  if tk < 1 then return {0, peers} end
  tokens[i] = tk
end
for i = 2, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 't', tostring(tokens[i] - 1), 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {1, peers}
"""

#: KEYS alive, bucket; ARGV me, ttl, rate, burst, n → {ms to wait, live members}: ``n`` tokens
#: reserved from a shared traffic bucket (the reservation model of the local TokenBucket: the
#: bucket may go into debt, the taker waits until it is paid).
LEASE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1)
redis.call('ZADD', KEYS[1], now + ttl, me)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
local rate, burst, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[2], 't', 'ts')
local tk, ts = tonumber(s[1]), tonumber(s[2])
if not tk or not ts then tk, ts = burst, now end
if now > ts then tk = math.min(burst, tk + (now - ts) * rate / 1000) end
tk = tk - n
redis.call('HSET', KEYS[2], 't', tostring(tk), 'ts', now)
redis.call('PEXPIRE', KEYS[2], math.ceil((burst - tk) / rate * 1000) + 1000)
local wait = 0
if tk < 0 then wait = math.ceil(-tk * 1000 / rate) end
return {wait, redis.call('ZCARD', KEYS[1])}
"""

SCRIPTS = {"acquire": ACQUIRE, "sync": SYNC, "rate": RATE, "lease": LEASE}


def _member():
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class StoreDown(Exception):
    """Redis did not answer (down, slow, refused the script): the caller's fallback applies."""


class Store:
    """One shared limiter's Redis: its key prefix, heartbeat TTL and member id. ``run`` makes one
    scripted decision. After a failure, decisions skip Redis for ``RETRY`` seconds (a Redis that
    is down costs a connection nothing, a black-holed one costs at most one timeout per retry),
    then one caller probes. Down and up are logged once each, with ``down`` saying what follows."""

    #: seconds between probes of a Redis that failed
    RETRY = 1.0

    def __init__(self, client, prefix, ttl, log=None, down=""):
        self.client = client
        self.prefix = prefix
        self.ttl = float(ttl)
        self.ttl_ms = max(1, int(self.ttl * 1000))
        self.me = _member()
        self.alive = f"{prefix}:alive"
        self.log = log
        self.down_means = down
        self.up = True
        self._retry_at = 0.0
        self._scripts = {}
        import redis

        self._errors = (redis.RedisError, OSError)

    def close(self):
        """Release the Redis client (the pool's sockets close with its last user). Idempotent."""
        if self.client is not None:
            from ...loader import redisconn

            redisconn.release(self.client)
            self.client = None

    def renew(self):
        """A new member id for this limiter (its counts are re-asserted under it) → the old one."""
        old, self.me = self.me, _member()
        return old

    def key(self, kind, scope):
        """``<prefix>:<kind>:$`` for the service, ``<prefix>:<kind>:ip:<client>`` otherwise."""
        return f"{self.prefix}:{kind}:$" if scope == SERVICE else f"{self.prefix}:{kind}:ip:{scope}"

    def run(self, name, keys, args):
        """Script ``name`` on ``[alive, *keys]`` with ``[me, ttl_ms, *args]`` → its answer;
        raises StoreDown when Redis cannot answer now (or the store was closed: what still
        asks, a replaced limiter's connection, takes the local fallback)."""
        if self.client is None:
            raise StoreDown()
        if not self.up:
            now = time.monotonic()
            if now < self._retry_at:
                raise StoreDown()
            self._retry_at = now + self.RETRY   # this caller probes; the others keep skipping
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(SCRIPTS[name])
        try:
            answer = script(keys=[self.alive, *keys], args=[self.me, self.ttl_ms, *args])
        except self._errors as exc:
            self._failed(exc)
            raise StoreDown() from None
        if not self.up:
            self.up = True
            if self.log is not None:
                self.log.info("limiter store: Redis answers again", store=self.prefix)
        return answer

    def _failed(self, exc):
        self._retry_at = time.monotonic() + self.RETRY
        if self.up:
            self.up = False
            if self.log is not None:
                self.log.warning(f"limiter store: Redis did not answer ({type(exc).__name__}: {exc}): {self.down_means}",
                                 store=self.prefix)
