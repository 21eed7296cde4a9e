"""COMMAND DOCS: what each command does and takes, in the shape Redis 7 answers it
(redis-cli builds its argument hints from it).

One line per command: ``name | group | since | summary | syntax``. The syntax is
Redis's notation (``key field value [field value ...]``, ``[NX | XX]``); ``arguments``
turns it into COMMAND DOCS's argument maps: a lower-case word is an argument (a key
when it is ``key``, ``source``, ``destination``...), an upper-case one a token, square
brackets make what they hold optional, ``...`` repeats the argument before it, and
``a | b`` is a choice.
"""

from __future__ import annotations

import re
from typing import Any, Final

TABLE: Final = """
append|string|2.0.0|Appends a string to the value of a key; creates the key if absent.|key value
auth|connection|1.0.0|Authenticates the connection with a token.|[username] password
blmove|list|6.2.0|Moves an element from one list to another, waiting for one.|source destination LEFT | RIGHT LEFT | RIGHT timeout
blmpop|list|7.0.0|Pops elements from the first non-empty list, waiting for one.|timeout numkeys key [key ...] LEFT | RIGHT [COUNT count]
blpop|list|2.0.0|Removes and returns the first element of the first non-empty list, waiting for one.|key [key ...] timeout
brpop|list|2.0.0|Removes and returns the last element of the first non-empty list, waiting for one.|key [key ...] timeout
brpoplpush|list|2.2.0|Moves the last element of a list to the head of another, waiting for one.|source destination timeout
bzmpop|sorted-set|7.0.0|Pops members from the first non-empty sorted set, waiting for one.|timeout numkeys key [key ...] MIN | MAX [COUNT count]
bzpopmax|sorted-set|5.0.0|Removes and returns the highest-scored member of the first non-empty sorted set, waiting for one.|key [key ...] timeout
bzpopmin|sorted-set|5.0.0|Removes and returns the lowest-scored member of the first non-empty sorted set, waiting for one.|key [key ...] timeout
client|connection|2.4.0|Commands about client connections (ID, SETNAME, GETNAME, INFO, LIST, KILL, SETINFO).|
command|server|2.8.13|Details about the commands this server implements.|
config|server|2.0.0|Reads or changes this node's settings (GET, SET, RESETSTAT).|
copy|generic|6.2.0|Copies the value of a key to a new key.|source destination [DB destination-db] [REPLACE]
dbsize|server|1.0.0|The number of keys.|
decr|string|1.0.0|Decrements the integer value of a key by one.|key
decrby|string|1.0.0|Decrements the integer value of a key by a number.|key decrement
del|generic|1.0.0|Deletes keys, all in one log entry.|key [key ...]
discard|transactions|2.0.0|Discards a transaction.|
echo|connection|1.0.0|Returns the given string.|message
eval|scripting|2.6.0|Runs a Lua script as one log entry, on every replica.|script numkeys [key [key ...]] [arg [arg ...]]
eval_ro|scripting|7.0.0|Runs a read-only Lua script as a linearizable read.|script numkeys [key [key ...]] [arg [arg ...]]
evalsha|scripting|2.6.0|Runs a cached Lua script by its SHA1 digest.|sha1 numkeys [key [key ...]] [arg [arg ...]]
evalsha_ro|scripting|7.0.0|Runs a cached read-only Lua script by its SHA1 digest.|sha1 numkeys [key [key ...]] [arg [arg ...]]
exec|transactions|1.2.0|Runs the queued commands of a transaction as one log entry.|
exists|generic|1.0.0|How many of the keys exist.|key [key ...]
expire|generic|1.0.0|Sets a key's time to live in seconds.|key seconds [NX | XX | GT | LT]
expireat|generic|1.2.0|Sets a key's deadline as a Unix time in seconds.|key unix-time-seconds [NX | XX | GT | LT]
expiretime|generic|7.0.0|A key's deadline as a Unix time in seconds.|key
flushall|server|1.0.0|Deletes every key.|[ASYNC | SYNC]
flushdb|server|1.0.0|Deletes every key.|[ASYNC | SYNC]
get|string|1.0.0|The string value of a key.|key
getdel|string|6.2.0|Returns a string value and deletes its key.|key
getex|string|6.2.0|Returns a string value and changes its key's deadline.|key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]
getrange|string|2.4.0|A substring of a string value.|key start end
getset|string|1.0.0|Sets a string value and returns the previous one.|key value
hdel|hash|2.0.0|Deletes fields from a hash; the key goes with its last field.|key field [field ...]
hello|connection|6.0.0|Chooses the protocol (2 or 3) and authenticates.|[protover [AUTH username password] [SETNAME clientname]]
hexists|hash|2.0.0|Whether a field exists in a hash.|key field
hget|hash|2.0.0|The value of a field in a hash.|key field
hgetall|hash|2.0.0|Every field and value in a hash.|key
hincrby|hash|2.0.0|Increments the integer value of a field in a hash.|key field increment
hincrbyfloat|hash|2.6.0|Increments the floating point value of a field in a hash.|key field increment
hkeys|hash|2.0.0|Every field in a hash.|key
hlen|hash|2.0.0|The number of fields in a hash.|key
hmget|hash|2.0.0|The values of several fields in a hash.|key field [field ...]
hmset|hash|2.0.0|Sets several fields of a hash.|key field value [field value ...]
hrandfield|hash|6.2.0|Random fields of a hash.|key [count [WITHVALUES]]
hscan|hash|2.8.0|Iterates over the fields and values of a hash.|key cursor [MATCH pattern] [COUNT count]
hset|hash|2.0.0|Sets fields of a hash, creating it if absent.|key field value [field value ...]
hsetnx|hash|2.0.0|Sets a field of a hash only if it is absent.|key field value
hstrlen|hash|3.2.0|The length of a field's value in a hash.|key field
hvals|hash|2.0.0|Every value in a hash.|key
incr|string|1.0.0|Increments the integer value of a key by one.|key
incrby|string|1.0.0|Increments the integer value of a key by a number.|key increment
incrbyfloat|string|2.6.0|Increments the floating point value of a key.|key increment
info|server|1.0.0|Information and statistics about this node.|[section [section ...]]
keys|generic|1.0.0|Every key that matches a pattern.|pattern
lindex|list|1.0.0|An element of a list by its index.|key index
linsert|list|2.2.0|Inserts an element before or after another in a list.|key BEFORE | AFTER pivot element
llen|list|1.0.0|The length of a list.|key
lmove|list|6.2.0|Pops an element from one list and pushes it onto another.|source destination LEFT | RIGHT LEFT | RIGHT
lmpop|list|7.0.0|Pops elements from the first non-empty list.|numkeys key [key ...] LEFT | RIGHT [COUNT count]
lpop|list|1.0.0|Removes and returns the first elements of a list.|key [count]
lpos|list|6.0.6|The index of matching elements in a list.|key element [RANK rank] [COUNT num-matches] [MAXLEN len]
lpush|list|1.0.0|Prepends elements to a list, creating it if absent.|key element [element ...]
lpushx|list|2.2.0|Prepends elements to a list only if it exists.|key element [element ...]
lrange|list|1.0.0|A range of elements of a list.|key start stop
lrem|list|1.0.0|Removes elements equal to one from a list.|key count element
lset|list|1.0.0|Sets the element at an index of a list.|key index element
ltrim|list|1.0.0|Keeps only a range of a list.|key start stop
mget|string|1.0.0|The string values of several keys.|key [key ...]
mset|string|1.0.1|Sets several keys at once.|key value [key value ...]
msetnx|string|1.0.1|Sets several keys only if none exists.|key value [key value ...]
multi|transactions|1.2.0|Starts a transaction.|
object|generic|2.2.3|Inspects a key (ENCODING, FREQ, IDLETIME, REFCOUNT).|
persist|generic|2.2.0|Removes a key's deadline.|key
pexpire|generic|2.6.0|Sets a key's time to live in milliseconds.|key milliseconds [NX | XX | GT | LT]
pexpireat|generic|2.6.0|Sets a key's deadline as a Unix time in milliseconds.|key unix-time-milliseconds [NX | XX | GT | LT]
pexpiretime|generic|7.0.0|A key's deadline as a Unix time in milliseconds.|key
ping|connection|1.0.0|Answers PONG (or the message).|[message]
psetex|string|2.6.0|Sets a string value and its time to live in milliseconds.|key milliseconds value
psubscribe|pubsub|2.0.0|Listens to channels that match patterns.|pattern [pattern ...]
pttl|generic|2.6.0|A key's time to live in milliseconds.|key
publish|pubsub|2.0.0|Posts a message to a channel.|channel message
punsubscribe|pubsub|2.0.0|Stops listening to patterns.|[pattern [pattern ...]]
quit|connection|1.0.0|Closes the connection.|
randomkey|generic|1.0.0|A random key.|
rename|generic|1.0.0|Renames a key, replacing the destination.|key newkey
renamenx|generic|1.0.0|Renames a key only if the new name is free.|key newkey
rpop|list|1.0.0|Removes and returns the last elements of a list.|key [count]
rpoplpush|list|1.2.0|Pops the last element of a list and pushes it onto another.|source destination
rpush|list|1.0.0|Appends elements to a list, creating it if absent.|key element [element ...]
rpushx|list|2.2.0|Appends elements to a list only if it exists.|key element [element ...]
sadd|set|1.0.0|Adds members to a set, creating it if absent.|key member [member ...]
scan|generic|2.8.0|Iterates over the keys.|cursor [MATCH pattern] [COUNT count] [TYPE type]
scard|set|1.0.0|The number of members of a set.|key
script|scripting|2.6.0|Manages the replicated script cache (LOAD, EXISTS, FLUSH, KILL).|
sdiff|set|1.0.0|The members of the first set that are in none of the others.|key [key ...]
sdiffstore|set|1.0.0|Stores the difference of sets in a key.|destination key [key ...]
select|connection|1.0.0|Selects database 0 (the only one).|index
set|string|1.0.0|Sets the string value of a key.|key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]
setex|string|2.0.0|Sets a string value and its time to live in seconds.|key seconds value
setnx|string|1.0.0|Sets a string value only if the key is absent.|key value
setrange|string|2.2.0|Overwrites part of a string value from an offset.|key offset value
sinter|set|1.0.0|The members every set has.|key [key ...]
sintercard|set|7.0.0|The number of members every set has.|numkeys key [key ...] [LIMIT limit]
sinterstore|set|1.0.0|Stores the intersection of sets in a key.|destination key [key ...]
sismember|set|1.0.0|Whether a member is in a set.|key member
smembers|set|1.0.0|Every member of a set.|key
smismember|set|6.2.0|Whether each member is in a set.|key member [member ...]
smove|set|1.0.0|Moves a member from one set to another.|source destination member
spop|set|1.0.0|Removes and returns random members of a set.|key [count]
srandmember|set|1.0.0|Random members of a set.|key [count]
srem|set|1.0.0|Removes members from a set; the key goes with its last member.|key member [member ...]
sscan|set|2.8.0|Iterates over the members of a set.|key cursor [MATCH pattern] [COUNT count]
strlen|string|2.2.0|The length of a string value.|key
subscribe|pubsub|2.0.0|Listens to channels.|channel [channel ...]
substr|string|1.0.0|A substring of a string value (GETRANGE's old name).|key start end
sunion|set|1.0.0|The members of any of the sets.|key [key ...]
sunionstore|set|1.0.0|Stores the union of sets in a key.|destination key [key ...]
time|server|2.6.0|The server's time.|
touch|generic|3.2.1|How many of the keys exist, counting an access to each.|key [key ...]
ttl|generic|1.0.0|A key's time to live in seconds.|key
type|generic|1.0.0|The type of a key's value.|key
unlink|generic|4.0.0|Deletes keys, all in one log entry.|key [key ...]
unsubscribe|pubsub|2.0.0|Stops listening to channels.|[channel [channel ...]]
unwatch|transactions|2.2.0|Forgets every watched key.|
wait|generic|3.0.0|How many replicas hold this connection's writes.|numreplicas timeout
watch|transactions|2.2.0|Makes the next transaction depend on keys staying unchanged.|key [key ...]
xack|stream|5.0.0|Acknowledges entries of a consumer group.|key group id [id ...]
xadd|stream|5.0.0|Appends an entry to a stream, creating it if absent.|key [NOMKSTREAM] [MAXLEN | MINID [= | ~] threshold [LIMIT count]] id field value [field value ...]
xautoclaim|stream|6.2.0|Claims the pending entries idle long enough.|key group consumer min-idle-time start [COUNT count] [JUSTID]
xclaim|stream|5.0.0|Changes the owner of pending entries.|key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]
xdel|stream|5.0.0|Deletes entries from a stream.|key id [id ...]
xgroup|stream|5.0.0|Manages consumer groups (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER).|
xinfo|stream|5.0.0|About streams, their groups and consumers (STREAM, GROUPS, CONSUMERS).|
xlen|stream|5.0.0|The number of entries in a stream.|key
xpending|stream|5.0.0|The pending entries of a consumer group.|key group [[IDLE min-idle-time] start end count [consumer]]
xrange|stream|5.0.0|The entries of a stream within a range of IDs.|key start end [COUNT count]
xread|stream|5.0.0|Reads entries from streams after the given IDs, waiting for them with BLOCK.|[COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]
xreadgroup|stream|5.0.0|Reads entries from streams for a consumer of a group.|GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]
xrevrange|stream|5.0.0|The entries of a stream within a range of IDs, newest first.|key end start [COUNT count]
xtrim|stream|5.0.0|Deletes the oldest entries of a stream.|key MAXLEN | MINID [= | ~] threshold [LIMIT count]
zadd|sorted-set|1.2.0|Adds members to a sorted set or updates their scores.|key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]
zcard|sorted-set|1.2.0|The number of members of a sorted set.|key
zcount|sorted-set|2.0.0|The number of members with scores within a range.|key min max
zdiff|sorted-set|6.2.0|The members of the first sorted set that are in none of the others.|numkeys key [key ...] [WITHSCORES]
zdiffstore|sorted-set|6.2.0|Stores the difference of sorted sets in a key.|destination numkeys key [key ...]
zincrby|sorted-set|1.2.0|Increments the score of a member.|key increment member
zinter|sorted-set|6.2.0|The members every sorted set has.|numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]
zintercard|sorted-set|7.0.0|The number of members every sorted set has.|numkeys key [key ...] [LIMIT limit]
zinterstore|sorted-set|2.0.0|Stores the intersection of sorted sets in a key.|destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]
zlexcount|sorted-set|2.8.9|The number of members within a lexicographical range.|key min max
zmpop|sorted-set|7.0.0|Pops the lowest or highest scoring members of the first non-empty sorted set.|numkeys key [key ...] MIN | MAX [COUNT count]
zmscore|sorted-set|6.2.0|The scores of several members.|key member [member ...]
zpopmax|sorted-set|5.0.0|Removes and returns the highest scoring members.|key [count]
zpopmin|sorted-set|5.0.0|Removes and returns the lowest scoring members.|key [count]
zrandmember|sorted-set|6.2.0|Random members of a sorted set.|key [count [WITHSCORES]]
zrange|sorted-set|1.2.0|Members in a range of ranks, scores or names.|key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
zrangebylex|sorted-set|2.8.9|Members within a lexicographical range.|key min max [LIMIT offset count]
zrangebyscore|sorted-set|1.0.5|Members within a range of scores.|key min max [WITHSCORES] [LIMIT offset count]
zrangestore|sorted-set|6.2.0|Stores a range of a sorted set in a key.|dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]
zrank|sorted-set|2.0.0|The rank of a member, lowest score first.|key member
zrem|sorted-set|1.2.0|Removes members; the key goes with its last member.|key member [member ...]
zremrangebylex|sorted-set|2.8.9|Removes the members within a lexicographical range.|key min max
zremrangebyrank|sorted-set|2.0.0|Removes the members within a range of ranks.|key start stop
zremrangebyscore|sorted-set|1.2.0|Removes the members within a range of scores.|key min max
zrevrange|sorted-set|1.2.0|Members in a range of ranks, highest score first.|key start stop [WITHSCORES]
zrevrangebylex|sorted-set|2.8.9|Members within a lexicographical range, in reverse.|key max min [LIMIT offset count]
zrevrangebyscore|sorted-set|2.2.0|Members within a range of scores, highest first.|key max min [WITHSCORES] [LIMIT offset count]
zrevrank|sorted-set|2.0.4|The rank of a member, highest score first.|key member
zscan|sorted-set|2.8.0|Iterates over the members and scores of a sorted set.|key cursor [MATCH pattern] [COUNT count]
zscore|sorted-set|1.2.0|The score of a member.|key member
zunion|sorted-set|6.2.0|The members of any of the sorted sets.|numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]
zunionstore|sorted-set|2.0.0|Stores the union of sorted sets in a key.|destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]
"""

KEY_NAMES: Final = frozenset({"key", "source", "destination", "newkey", "dst", "src"})
INTEGER_NAMES: Final = frozenset({
    "count", "numkeys", "index", "start", "stop", "end", "offset", "seconds",
    "milliseconds", "unix-time-seconds", "unix-time-milliseconds", "timeout", "rank",
    "num-matches", "len", "limit", "cursor", "numreplicas", "increment", "decrement",
    "protover", "destination-db"})
DOUBLE_NAMES: Final = frozenset({"score", "weight"})


class Doc:
    __slots__ = ("arguments", "group", "since", "summary")

    def __init__(self, group: str, since: str, summary: str, syntax: str) -> None:
        self.group = group
        self.since = since
        self.summary = summary
        self.arguments = arguments(syntax)


def arguments(syntax: str) -> list[dict[str, Any]]:
    """COMMAND DOCS's argument maps for a syntax line."""
    tokens = re.findall(r"\[|\]|\||\.\.\.|[^\s\[\]|]+", syntax)
    parsed, _ = _sequence(tokens, 0)
    return parsed


def _sequence(tokens: list[str], at: int) -> tuple[list[dict[str, Any]], int]:
    """Arguments up to a closing bracket (or the end); ``a | b`` runs become oneofs."""
    items: list[dict[str, Any]] = []
    choice = False
    while at < len(tokens) and tokens[at] != "]":
        token = tokens[at]
        if token == "|":
            choice = True
            at += 1
            continue
        if token == "...":
            if items:
                items[-1].setdefault("flags", []).append("multiple")
            at += 1
            continue
        if token == "[":
            inner, at = _sequence(tokens, at + 1)
            at += 1  # the "]"
            repeats = len(inner) > 1 and inner[-1].get("flags") == ["multiple"]
            if repeats:  # "[field value ...]": the group repeats, not its last word
                del inner[-1]["flags"]
            item: dict[str, Any] = inner[0] if len(inner) == 1 else {
                "name": "-".join(str(i["name"]) for i in inner), "type": "block",
                "arguments": inner}
            item.setdefault("flags", []).append("optional")
            if repeats:
                item["flags"].append("multiple")
        else:
            item = _word(token)
            at += 1
            following = tokens[at] if at < len(tokens) else ""
            if item["type"] == "pure-token" and following not in ("", "[", "]", "|", "...") \
                    and not following.isupper():  # "EX seconds": the token and its value
                item = {"name": following, "type": "block",
                        "arguments": [item, _word(following)]}
                at += 1
        if choice and items:
            previous = items.pop()
            if previous.get("type") == "oneof" and "flags" not in previous:
                previous["arguments"].append(item)
                items.append(previous)
            else:
                items.append({"name": f"{previous['name']}-{item['name']}", "type": "oneof",
                              "arguments": [previous, item]})
            choice = False
        else:
            items.append(item)
    return items, at


def _word(token: str) -> dict[str, Any]:
    if token.isupper():
        return {"name": token.lower(), "type": "pure-token", "token": token}
    kind = ("key" if token in KEY_NAMES else "integer" if token in INTEGER_NAMES
            else "double" if token in DOUBLE_NAMES else "string")
    return {"name": token, "type": kind}


DOCS: Final[dict[str, Doc]] = {
    name: Doc(group, since, summary, syntax)
    for name, group, since, summary, syntax in (
        line.split("|", 4) for line in TABLE.strip().splitlines())
}
