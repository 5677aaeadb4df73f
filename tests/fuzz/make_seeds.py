#!/usr/bin/env python3
"""Writes the hand-made seed inputs of tests/fuzz/corpus/ (run from anywhere; idempotent).

A parser seed is [limits byte][read-plan bytes][stream] (see fuzz_support.hpp): each stream is
written as one read with Redis's default limits, and some also byte by byte, in odd reads and
with small limits. The config seeds are the example configurations plus hand-written edge
cases. Files are named seed-<name>; inputs the fuzzer adds with FUZZ_MERGE=1 are named by their
SHA-1, crash reproducers crash-<what>.
"""
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


REQUESTS = {
    "get": cmd("GET", "k"),
    "set-ex": cmd("SET", "user:1", "v" * 40, "EX", "60"),
    "pipeline": cmd("PING") + cmd("SET", "a", "1") + cmd("GET", "a") + cmd("MGET", "a", "b", "c"),
    "empty-arrays": b"*0\r\n*-1\r\n" + cmd("PING"),
    "binary-value": cmd("SET", "k", bytes(range(256))),
    "empty-bulk": cmd("SET", "k", ""),
    "inline-ping": b"PING\r\n",
    "inline-lf": b"PING\n",
    "inline-quotes": b'set k "a b\\x41\\n\\"" \'it\\\'s\'\r\n',
    "inline-blank": b"\r\n\n   \r\nPING\r\n",
    "inline-unbalanced": b'set k "abc\r\n',
    "inline-closing-quote": b'set k "a"b\r\n',
    "inline-nul": b"GET a\x00b\r\n",
    "mixed": b"PING\r\n" + cmd("GET", "k") + b"ECHO hi\r\n",
    "bad-multibulk-len": b"*x\r\n",
    "leading-zero": b"*01\r\n$3\r\nGET\r\n",
    "negative-bulk": b"*1\r\n$-1\r\n",
    "expected-dollar": b"*1\r\n:3\r\nGET\r\n",
    "big-count": b"*2147483648\r\n",
    "bulk-lenient-crlf": b"*2\r\n$3\r\nGETxx$1\r\nkyy",
    "incomplete": b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc",
    "cr-only": b"*1\r",
    "huge-bulk": b"*2\r\n$3\r\nSET\r\n$536870913\r\n",
    "multi-exec": cmd("MULTI") + cmd("INCR", "c") + cmd("EXEC"),
    "hello3": cmd("HELLO", "3", "AUTH", "default", "pw") + cmd("CLIENT", "SETNAME", "x"),
}

REPLIES = {
    "simple": b"+OK\r\n",
    "error": b"-ERR unknown command 'foo'\r\n",
    "integer": b":1000\r\n:-1\r\n",
    "bulk": b"$5\r\nhello\r\n",
    "null-bulk": b"$-1\r\n*-1\r\n_\r\n",
    "array": b"*3\r\n$3\r\nfoo\r\n:42\r\n*2\r\n+a\r\n$-1\r\n",
    "empty-aggregates": b"*0\r\n%0\r\n~0\r\n>0\r\n",
    "map": b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#t\r\n",
    "set": b"~3\r\n+a\r\n+b\r\n,3.14\r\n",
    "push": b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nmsg\r\n",
    "attribute": b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
    "nested-attribute": b"*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n|0\r\n+x\r\n",
    "resp3-scalars": b"_\r\n#t\r\n#f\r\n,inf\r\n,-inf\r\n,nan\r\n,1.5e10\r\n(3492890328409238509324850943850943825024385\r\n",
    "verbatim": b"=15\r\ntxt:Some string\r\n",
    "blob-error": b"!21\r\nSYNTAX invalid syntax\r\n",
    "bad-verbatim": b"=3\r\ntxt\r\n",
    "bad-integer": b":abc\r\n#x\r\n",
    "bad-type": b"@oops\r\n",
    "streamed": b"$?\r\n;4\r\nHell\r\n;0\r\n",
    "bulk-not-crlf": b"$3\r\nfooXX",
    "lone-cr": b"+a\rb\r\n",
    "deep": b"*1\r\n" * 130 + b":1\r\n",
    "hello-reply": b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:5\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
    "incomplete": b"*2\r\n$3\r\nfoo\r\n$3\r\nba",
    "big-count": b"*9223372036854775807\r\n%4611686018427387904\r\n",
}

CONFIGS = {
    "empty": b"",
    "comment": b"# nothing\n",
    "minimal": b"upstream:\n  address: 127.0.0.1:6379\n",
    "bad-duration": b"upstream:\n  request_timeout: soon\n",
    "two-documents": b"listen: 127.0.0.1:6380\n---\nlisten: 127.0.0.1:6381\n",
    "not-a-map": b"- a\n- b\n",
    "dotted-key": b"upstream.address: redis:6379\n",
    "unknown-key": b"upstream:\n  adress: redis:6379\n",
    "ipv6": b"listen: \"[::1]:6380\"\nupstream:\n  address: \"[2001:db8::1]:6379\"\n",
    "sizes": b"server:\n  output_buffer_limit: 64mb\n  query_buffer_limit: 1gb\n",
    "anchors": b"a: &x\n  b: 1\nc: *x\n",
    "deep-flow": b"[" * 200 + b"]" * 200,
    "tabs": b"upstream:\n\taddress: x:1\n",
    "rules": b"rules:\n  - match: \"user:*\"\n    db: 0\n    jitter:\n      percent: 0.1\n      default_ttl: 1h\n    coalesce: true\n    negative_cache:\n      ttl: 5s\n    lease:\n      wait: 1s\n",
    "rate-limit": b"rate_limit:\n  identity: source_ip\n  limit:\n    rate: 100\n    burst: 200\n  overrides:\n    - identity: \"2001:DB8::7\"\n      limit:\n        rate: 0\n",
}


def write(directory, name, data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ("seed-" + name)).write_bytes(data)


def main():
    for target, streams in (("request_parser", REQUESTS), ("reply_parser", REPLIES)):
        d = HERE / "corpus" / target
        for i, (name, stream) in enumerate(streams.items()):
            write(d, name, b"\x00\x00" + stream)  # default limits, one read
            if i % 3 == 0:
                write(d, name + "-bytewise", b"\x00\x10" + stream)  # byte by byte
            if i % 3 == 1:
                write(d, name + "-reads", b"\x00\x03\x01\x85\x02" + stream)  # 2, 41, 3, rest
            if i % 3 == 2:
                write(d, name + "-small-limits", b"\x2b\x02\x00\x03" + stream)
    d = HERE / "corpus" / "config"
    for name, text in CONFIGS.items():
        write(d, name, text)
    for example in sorted((ROOT / "config").rglob("*.yaml")):
        write(d, example.stem, example.read_bytes())


if __name__ == "__main__":
    main()
