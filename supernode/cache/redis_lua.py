"""The Redis backend's key layout and Lua scripts (each script runs atomically in Redis).

Layout under a key prefix P, with R = P + ":" + T + ":" + len(namespace) + ":" + namespace, where
T is "ns" for KV blocks and "model" for model blocks (the length keeps namespaces containing
":" from colliding; T keeps the two kinds apart):

    R:b:<block key>  HASH  p payload, c crc32, t true_num_bytes, n num_tokens, s R,
                           k the kind's stats key, r readers holding a lease,
                           l lease expiry (Redis server ms)
    R:lru            ZSET  block hash name -> recency score (higher = more recent)
    R:st             HASH  blocks, used, payload, lookups, queried, hits, evictions
    P:lru            ZSET  the same members over every namespace (pool-wide LRU)
    P:st             HASH  the same counters over every namespace
    P:st:<kind>      HASH  the same counters over every namespace of one kind
    P:tick           STRING  recency counter; each touch takes fresh scores from it
    P:nss            SET   KV namespace names ever used (P:nss:model: model namespaces)
    P:models         HASH  model key -> manifest text (metadata: never evicted)

Recency is a counter, not a timestamp, so ties never happen and replicas need no shared clock;
touches use ZADD GT, so a key repeated within one call keeps the score of its first occurrence
(as the memory store does), which needs Redis >= 6.2;
lease expiry uses Redis's own TIME for the same reason. Eviction picks victims in ascending
score, skipping leased and protected blocks, and only deletes once enough room is found, so a
rejected put changes nothing. Scripts touch block hashes they find in the ZSETs (not declared
in KEYS): this needs a standalone Redis (or one shard), not Redis Cluster.
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The leading KEYS from `first` that exist, stopping at the first missing one.
local function leading_hits(first)
  local n = 0
  for i = first, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 0 then break end
    n = n + 1
  end
  return n
end
-- Give KEYS[first .. first+n-1] fresh scores in both LRUs, the first one the highest.
local function touch(tick, ns_lru, pool_lru, first, n)
  if n == 0 then return end
  local top = redis.call('INCRBY', tick, n)
  for i = 0, n - 1 do
    redis.call('ZADD', ns_lru, 'GT', top - i, KEYS[first + i])
    redis.call('ZADD', pool_lru, 'GT', top - i, KEYS[first + i])
  end
end
"""

LOOKUP = (
    _COMMON
    + """
-- KEYS: tick, ns lru, pool lru, ns stats, pool stats, nss, kind stats, block names...
-- ARGV: namespace
local n = leading_hits(8)
touch(KEYS[1], KEYS[2], KEYS[3], 8, n)
for _, st in ipairs({KEYS[4], KEYS[5], KEYS[7]}) do
  redis.call('HINCRBY', st, 'lookups', 1)
  redis.call('HINCRBY', st, 'queried', #KEYS - 7)
  redis.call('HINCRBY', st, 'hits', n)
end
redis.call('SADD', KEYS[6], ARGV[1])
return n
"""
)

LEASE = (
    _COMMON
    + """
-- KEYS: tick, ns lru, pool lru, block names...  ARGV: lease ms
local n = leading_hits(4)
touch(KEYS[1], KEYS[2], KEYS[3], 4, n)
local expires = now_ms() + tonumber(ARGV[1])
for i = 4, 3 + n do
  redis.call('HINCRBY', KEYS[i], 'r', 1)
  if tonumber(redis.call('HGET', KEYS[i], 'l') or '0') < expires then
    redis.call('HSET', KEYS[i], 'l', expires)
  end
end
return n
"""
)

RELEASE = """
-- KEYS: block names whose lease one reader gives back.
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('HINCRBY', KEYS[i], 'r', -1) <= 0 then
      redis.call('HDEL', KEYS[i], 'r', 'l')
    end
  end
end
return #KEYS
"""

PUT = (
    _COMMON
    + """
-- KEYS: block name, ns lru, pool lru, ns stats, pool stats, nss, kind stats
-- ARGV: payload, crc32, true bytes, tokens, ns root, ns capacity, pool capacity, namespace,
--       score, protected block names...
-- Returns {status, num evicted}; status 1 stored, 2 deduplicated, 0 rejected.
local block, ns_lru, pool_lru, ns_st, pool_st = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local kind_st = KEYS[7]
local size = tonumber(ARGV[3])
local score = tonumber(ARGV[9])
redis.call('SADD', KEYS[6], ARGV[8])
if redis.call('EXISTS', block) == 1 then
  redis.call('ZADD', ns_lru, 'GT', score, block)
  redis.call('ZADD', pool_lru, 'GT', score, block)
  return {2, 0}
end
if size > tonumber(ARGV[6]) or size > tonumber(ARGV[7]) then return {0, 0} end
local now = now_ms()
local excluded, victims = {}, {}
for i = 10, #ARGV do excluded[ARGV[i]] = true end
-- Add unleased, unexcluded LRU members of `lru` to the victims until they free `need` bytes.
local function choose(lru, need)
  local freed, start = 0, 0
  while freed < need do
    local batch = redis.call('ZRANGE', lru, start, start + 63)
    if #batch == 0 then return nil end
    for _, name in ipairs(batch) do
      if freed >= need then break end
      if not excluded[name] then
        local f = redis.call('HMGET', name, 't', 'l')
        if f[1] and tonumber(f[2] or '0') <= now then
          excluded[name] = true
          victims[#victims + 1] = name
          freed = freed + tonumber(f[1])
        end
      end
    end
    start = start + 64
  end
  return freed
end
local ns_used = tonumber(redis.call('HGET', ns_st, 'used') or '0')
local pool_used = tonumber(redis.call('HGET', pool_st, 'used') or '0')
local freed = choose(ns_lru, ns_used + size - tonumber(ARGV[6]))
if not freed then return {0, 0} end
if not choose(pool_lru, pool_used - freed + size - tonumber(ARGV[7])) then return {0, 0} end
for _, name in ipairs(victims) do
  local f = redis.call('HMGET', name, 't', 's', 'k')
  local num_payload = redis.call('HSTRLEN', name, 'p')
  redis.call('DEL', name)
  redis.call('ZREM', f[2] .. ':lru', name)
  redis.call('ZREM', pool_lru, name)
  for _, st in ipairs({f[2] .. ':st', pool_st, f[3]}) do
    redis.call('HINCRBY', st, 'blocks', -1)
    redis.call('HINCRBY', st, 'used', '-' .. f[1])
    redis.call('HINCRBY', st, 'payload', -num_payload)
    redis.call('HINCRBY', st, 'evictions', 1)
  end
end
redis.call('HSET', block, 'p', ARGV[1], 'c', ARGV[2], 't', ARGV[3], 'n', ARGV[4], 's', ARGV[5],
           'k', kind_st)
redis.call('ZADD', ns_lru, score, block)
redis.call('ZADD', pool_lru, score, block)
for _, st in ipairs({ns_st, pool_st, kind_st}) do
  redis.call('HINCRBY', st, 'blocks', 1)
  redis.call('HINCRBY', st, 'used', ARGV[3])
  redis.call('HINCRBY', st, 'payload', #ARGV[1])
end
return {1, #victims}
"""
)
