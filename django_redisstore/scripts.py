"""The Lua scripts of the engine (``flows.Script`` objects: ``SCRIPT.call(key, *args)``).

Private: no stable API.

Each script touches exactly one key (``KEYS[1]``), so it runs on Redis Cluster without
``CROSSSLOT`` errors; what must happen to two keys is sent as two calls in one pipeline. (The one
exception: ``INDEX_ADD`` deletes the sessions a per-user limit ends, when told that no cluster
holds them.) Byte offsets are those of ``codec`` (Lua strings count from 1). Times come from the
client (``now`` arguments) so that a record's times, its TTL and the index scores share one clock.
"""

from __future__ import annotations

from .flows import Script

#: Read a session and, when its record says so, slide its TTL to ``idle`` seconds (capped by
#: ``until``). ARGV: now (unix seconds). Returns the record, or nil.
LOAD_SLIDING = Script(
    "load_sliding",
    """
local blob = redis.call('GET', KEYS[1])
if not blob or string.len(blob) < 34 then return blob end
local idle, stop = struct.unpack('>I4I4', blob, 11)
if idle > 0 then
  local ttl = idle * 1000
  if stop > 0 then ttl = math.min(ttl, math.floor((stop - tonumber(ARGV[1])) * 1000)) end
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return blob
""",
    ttl_only=True,
)

#: Create a session's record unless its key is taken (``SET NX PX``), idempotently: a create
#: that redis-py re-sends after a connection broke on its way back finds its own record (the
#: same MAC) and succeeds, instead of taking the key for someone else's and trying another.
#: ARGV: the record, TTL in ms. Returns 1 when it wrote the record, 2 when the very same record
#: was there already, nil when the key holds another one.
CREATE = Script(
    "create",
    """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GETRANGE', KEYS[1], 18, 33) == string.sub(ARGV[1], 19, 34) then return 2 end
return false
""",
)

#: Replace a session's record if it is still the version the caller read (compared by MAC).
#: ARGV: expected MAC, new record, TTL in ms, and "1" to have the current record returned on a
#: conflict (else only its MAC). Returns 1 when written, 0 when the session is gone (deleted or
#: expired since), or, when someone else wrote it meanwhile, the current record (or its MAC):
#: the caller merges its own changes into it and tries again. A caller that will pause before
#: its next try asks for the MAC only and reads the record after the pause, fresher then.
SAVE = Script(
    "save",
    """
local current = redis.call('GETRANGE', KEYS[1], 18, 33)
if current == '' then return 0 end
if current ~= ARGV[1] then
  if ARGV[4] == '1' then return redis.call('GET', KEYS[1]) end
  return current
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
""",
)

#: Claim a record found under a fallback secret's name for its move to today's name: replace it
#: with a short-lived marker if it is still the version the caller read (compared by MAC). Of
#: parallel requests moving one record, exactly one claims it; one that read it before a move
#: and a logout cannot move it back. ARGV: expected MAC, the marker, the marker's TTL in ms.
#: Returns 1 when claimed, 0 when the record changed or is gone (moved by someone else).
CLAIM = Script(
    "claim",
    """
if redis.call('GETRANGE', KEYS[1], 18, 33) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
""",
)

#: Give a session a new TTL and ``until`` without rewriting its data, if it is still the version
#: the caller read (compared by MAC): the MAC covers ``until``, so the caller sends the new
#: ``until`` with the MAC it computed for it (``codec.reseal``), valid over that version only.
#: ARGV: TTL in ms, expected MAC, ``until`` (4 big-endian bytes) and the new MAC. Returns 1, or 0
#: when the session is gone or was written meanwhile (the writer set its own ``until``).
TOUCH = Script(
    "touch",
    """
if redis.call('GETRANGE', KEYS[1], 18, 33) ~= ARGV[2] then return 0 end
redis.call('SETRANGE', KEYS[1], 14, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
""",
)

#: Add a session to a per-user index, drop the entries that are certainly gone, and let the index
#: expire with its last entry. ARGV: session id, score (unix seconds after which the session is
#: certainly gone), now (unix seconds). A score only ever grows (ZADD GT). Returns 1.
#:
#: With ``REDISSTORE_MAX_SESSIONS_PER_USER``, a session new to the index is counted in the same
#: atomic step. ARGV also: the limit N (0: none), the policy, and the session key prefix when the
#: script may delete sessions itself ('' on a Cluster, where they live in other slots). A session
#: already listed is never counted. When the index holds N others already: "refuse" adds nothing
#: and returns 0; "end_oldest" takes the lowest-scored others (those the index expects to end
#: first) out of the index, down to N - 1, and returns {1, {ids it deleted}} after deleting
#: their sessions, or {0, {ids}} when the caller must delete them.
INDEX_ADD = Script(
    "index_add",
    """
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local result = 1
local limit = tonumber(ARGV[4] or '0')
if limit > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local excess = redis.call('ZCARD', KEYS[1]) - limit + 1
  if excess > 0 then
    if ARGV[5] == 'refuse' then return 0 end
    local victims = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
    redis.call('ZREM', KEYS[1], unpack(victims))
    if ARGV[6] == '' then
      result = {0, victims}
    else
      local deleted = {}
      for _, id in ipairs(victims) do
        if redis.call('DEL', ARGV[6] .. id) == 1 then deleted[#deleted + 1] = id end
      end
      result = {1, deleted}
    end
  end
end
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local ttl = math.ceil((tonumber(last[2]) - now) * 1000)
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('DEL', KEYS[1]) end
return result
""",
)

#: Read a per-user index: drop the entries whose score has passed, return the others. A key of
#: another type (not the engine's: something else wrote under ``<prefix>:u:``) reads as an empty
#: index and is left as it is. ARGV: now (unix seconds). Returns {entries dropped, {members}}.
INDEX_READ = Script(
    "index_read",
    """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then return {0, {}} end
local dropped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return {dropped, redis.call('ZRANGE', KEYS[1], 0, -1)}
""",
)

#: Delete a session if it is still the version the caller read (compared by MAC): bulk purges
#: select sessions by what they read, and leave alone one that a request wrote meanwhile.
#: ARGV: expected MAC. Returns 1 when it deleted the session, 0 when not.
DELETE_IF_UNCHANGED = Script(
    "delete_if_unchanged",
    """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then return 0 end
if redis.call('GETRANGE', KEYS[1], 18, 33) ~= ARGV[1] then return 0 end
redis.call('UNLINK', KEYS[1])
return 1
""",
)

#: ``sessions purge --all``: delete the keys that are the engine's own, and nothing else. KEYS:
#: keys of the prefix (any number on one server, one per call on Cluster). ARGV: the session
#: key prefix (``<prefix>:s:``), the record format version (one byte), the header size, the
#: ``ZPOPMIN`` count that empties an index, "1" for a dry run (nothing deleted), and "1" to
#: have each deleted record returned (for ``session_ended`` receivers: whose session it was).
#: A session key goes only when it holds a string that starts as a record does (its format
#: version, at least a header long); any other key of the prefix is an index, emptied with
#: ``ZPOPMIN`` when it is a sorted set (Redis then drops it). Anything else is left as it is:
#: ``pcall`` turns a WRONGTYPE into a skip. One read per key and one ``UNLINK`` per 500 keys keep
#: it close to a bare ``UNLINK`` loop.
#: Returns {sessions deleted, keys skipped, {ids the emptied indexes listed}, {key, record, ...}
#: of the deleted sessions when asked, else {}}.
PURGE = Script(
    "purge",
    """
local skipped, listed, doomed = 0, {}, {}
local prefix, version, header = ARGV[1], ARGV[2], tonumber(ARGV[3])
local dry = ARGV[5] == '1'
for _, key in ipairs(KEYS) do
  if string.sub(key, 1, #prefix) == prefix then
    local head = redis.pcall('GETRANGE', key, 0, header - 1)
    if type(head) == 'string' and #head == header and string.sub(head, 1, 1) == version then
      doomed[#doomed + 1] = key
    elseif type(head) ~= 'string' or redis.call('EXISTS', key) == 1 then
      skipped = skipped + 1
    end
  elseif not dry then
    local popped = redis.pcall('ZPOPMIN', key, ARGV[4])
    if popped.err then
      skipped = skipped + 1
    else
      for i = 1, #popped, 2 do listed[#listed + 1] = popped[i] end
    end
  end
end
local records = {}
if dry then
elseif ARGV[6] == '1' then
  for _, key in ipairs(doomed) do
    records[#records + 1] = key
    records[#records + 1] = redis.call('GETDEL', key)
  end
else
  for i = 1, #doomed, 500 do
    redis.call('UNLINK', unpack(doomed, i, math.min(i + 499, #doomed)))
  end
end
return {#doomed, skipped, listed, records}
""",
)

ALL = (LOAD_SLIDING, CREATE, SAVE, CLAIM, TOUCH, INDEX_ADD, INDEX_READ, DELETE_IF_UNCHANGED, PURGE)
