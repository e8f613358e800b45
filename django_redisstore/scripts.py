"""The Lua scripts of the engine (``flows.Script`` objects: ``SCRIPT.call(key, *args)``).

Private: no stable API.

Each script touches exactly one key (``KEYS[1]``), so it runs on Redis Cluster without
``CROSSSLOT`` errors; what must happen to two keys is sent as two calls in one pipeline. Byte
offsets are those of ``codec`` (Lua strings count from 1). Times come from the client (``now``
arguments) so that a record's times, its TTL and the index scores share one clock.
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

#: Replace a session's record if it is still the version the caller read (compared by MAC).
#: ARGV: expected MAC, new record, TTL in ms. Returns 1 when written, 0 when the session is gone
#: (deleted or expired since), or the current record when someone else wrote it meanwhile: the
#: caller merges its own changes into it and tries again.
SAVE = Script(
    "save",
    """
local current = redis.call('GETRANGE', KEYS[1], 18, 33)
if current == '' then return 0 end
if current ~= ARGV[1] then return redis.call('GET', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
""",
)

#: Give an existing session a new TTL and ``until`` without rewriting its data.
#: ARGV: TTL in ms, ``until`` as 4 big-endian bytes. Returns 1, or 0 when the session is gone.
TOUCH = Script(
    "touch",
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SETRANGE', KEYS[1], 14, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
""",
)

#: Add a session to a per-user index, drop the entries that are certainly gone, and let the index
#: expire with its last entry. ARGV: session id, score (unix seconds after which the session is
#: certainly gone), now (unix seconds). A score only ever grows (ZADD GT).
INDEX_ADD = Script(
    "index_add",
    """
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local ttl = math.ceil((tonumber(last[2]) - now) * 1000)
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('DEL', KEYS[1]) end
return 1
""",
)

#: Delete a session if it is still the version the caller read (compared by MAC): bulk purges
#: select sessions by what they read, and leave alone one that a request wrote meanwhile.
#: ARGV: expected MAC. Returns 0 when nothing was deleted, the deleted record when it belonged to
#: a signed-in user (its ``until`` is set: the caller decodes it to update that user's index),
#: 1 otherwise.
DELETE_IF_UNCHANGED = Script(
    "delete_if_unchanged",
    """
local blob = redis.call('GET', KEYS[1])
if not blob or string.sub(blob, 19, 34) ~= ARGV[1] then return 0 end
redis.call('UNLINK', KEYS[1])
if string.sub(blob, 15, 18) ~= string.rep(string.char(0), 4) then return blob end
return 1
""",
)

ALL = (LOAD_SLIDING, SAVE, TOUCH, INDEX_ADD, DELETE_IF_UNCHANGED)
