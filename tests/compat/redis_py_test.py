#!/usr/bin/python3
"""Compatibility test: redis-py (Debian python3-redis) through respguard, Redis as the reference.

Usage: redis_py_test.py RESPGUARD_BINARY REDIS_SERVER_BINARY

Starts its own redis-server and respguard on free loopback ports. Each scenario runs once
directly against redis-server and once through respguard; the results must be equal, and each
scenario also asserts its own invariants (no lost updates, every element popped exactly once,
...). A fault scenario then stops and kills redis-server under load: clients must get errors
rather than hang, recover, and every SET that was acknowledged must still be there.

KNOWN_ISSUES lists confirmed discrepancies that are not fixed yet. They run too and are reported
as XFAIL (not a failure); once one passes it is reported as XPASS: delete it from the list so it
stays fixed. RESPGUARD_COMPAT_STRICT=1 turns XFAIL into a failure.

Exits 0 on success, 1 on any failure, 2 on bad usage. Bounded by a 55 s watchdog; every process
it starts is killed by PID on the way out (and by PR_SET_PDEATHSIG if this script is killed).
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import redis

DEADLINE_S = 55
STRICT = os.environ.get("RESPGUARD_COMPAT_STRICT") == "1"
VERBOSE = os.environ.get("VERBOSE") == "1"


# ------------------------------------------------------------------------------ processes

def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: the child gets SIGKILL when this script dies, however it dies.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Processes:
    """Every child process, killed by PID in kill_all()."""

    def __init__(self, respguard, redis_server, workdir):
        self.respguard = respguard
        self.redis_server = redis_server
        self.workdir = workdir
        self.children = []
        help_text = subprocess.run([respguard, "--help"], capture_output=True, text=True,
                                   timeout=10).stdout
        self.has_admin_flag = "--admin" in help_text

    def _spawn(self, argv, log_name):
        log = open(os.path.join(self.workdir, log_name), "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
        log.close()
        self.children.append(proc)
        return proc

    def start_redis(self, port=None, extra=()):
        for _ in range(5):
            p = port or free_port()
            proc = self._spawn([self.redis_server, "--port", str(p), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--daemonize", "no",
                                "--dir", self.workdir, *extra], f"redis-{p}.log")
            if wait_port(p, proc):
                return proc, p
            self.kill(proc)
            if port:
                break
        raise RuntimeError(f"redis-server did not start (see {self.workdir})")

    def start_proxy(self, upstream_port, workers=2, password=None, port=None):
        for _ in range(5):
            p = port or free_port()
            argv = [self.respguard, "--listen", f"127.0.0.1:{p}",
                    "--upstream", f"127.0.0.1:{upstream_port}",
                    "--workers", str(workers), "--log-level", "warn"]
            if self.has_admin_flag:
                argv += ["--admin", f"127.0.0.1:{free_port()}"]
            if password is not None:
                conf = os.path.join(self.workdir, f"respguard-{p}.yaml")
                with open(conf, "w") as f:
                    f.write(f'upstream:\n  address: 127.0.0.1:{upstream_port}\n'
                            f'  password: "{password}"\n')
                argv += ["--config", conf]
            proc = self._spawn(argv, f"respguard-{p}.log")
            if wait_port(p, proc):
                return proc, p
            self.kill(proc)
            if port:
                break
        raise RuntimeError(f"respguard did not start (see {self.workdir})")

    @staticmethod
    def kill(proc):
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)  # a SIGSTOPped process must not linger
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def kill_all(self):
        for proc in reversed(self.children):
            self.kill(proc)
        self.children.clear()


# ------------------------------------------------------------------------------ helpers

class Check(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Check(what)


def norm(v):
    """Replies as comparable plain data."""
    if isinstance(v, bytes):
        return v.decode("latin1")
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {str(norm(k)): norm(x) for k, x in v.items()}
    if isinstance(v, set):
        return sorted(norm(x) for x in v)
    if isinstance(v, BaseException):
        return f"{type(v).__name__}: {v}"
    return v


def outcome(fn, *args, **kwargs):
    try:
        return norm(fn(*args, **kwargs))
    except redis.RedisError as e:
        return norm(e)


def run_threads(target, n, timeout):
    errors = []

    def wrap(i):
        try:
            target(i)
        except Exception as e:  # reported by the caller
            errors.append(f"thread {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    end = time.time() + timeout
    for t in threads:
        t.join(max(0.0, end - time.time()))
    hung = sum(t.is_alive() for t in threads)
    check(hung == 0, f"{hung} of {n} threads still running after {timeout} s (hang)")
    return errors


# ------------------------------------------------------------------------------ scenarios
# Each takes (port, direct_port) and returns plain data; it is run against Redis and respguard
# and the two results must be equal. direct_port is for helpers that act "from elsewhere".

def sc_pool_threads(port, _direct):
    r = redis.Redis(connection_pool=redis.ConnectionPool(port=port, max_connections=32,
                                                         socket_timeout=10))
    r.flushall()

    def work(i):
        for j in range(100):
            k = f"t:{i}:{j}"
            r.set(k, j)
            check(int(r.get(k)) == j, f"GET {k} returned another value")
            r.incr("counter")

    errors = run_threads(work, 20, 20)
    check(not errors, f"errors: {errors[:3]}")
    return [int(r.get("counter")), len(list(r.scan_iter("t:*", count=500)))]


def sc_pipelines(port, _direct):
    r = redis.Redis(port=port, socket_timeout=10)
    r.flushall()
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.set(f"p:{i}", i)
        p.get(f"p:{i}")
    p.incr("p:0")
    p.lpush("p:0", 1)
    res = p.execute(raise_on_error=False)
    check(all(res[2 * i + 1] == str(i).encode() for i in range(2000)), "pipeline replies out of order")
    out = [norm(res[-2:])]
    p = r.pipeline(transaction=True)
    p.set("tx", 1).incr("tx").get("tx").lpush("tx", 1).incr("tx")
    out.append(norm(p.execute(raise_on_error=False)))
    p = r.pipeline(transaction=True)
    p.set("tx2", 1)
    p.execute_command("NOSUCHCMD")
    p.incr("tx2")
    out.append(outcome(p.execute))
    out.append(norm(r.get("tx2")))
    return out


def sc_pubsub(port, direct):
    r = redis.Redis(port=port, socket_timeout=10)
    pub = redis.Redis(port=direct)
    out = []
    ps = r.pubsub()
    ps.subscribe("ch1", "ch2")
    ps.psubscribe("pat*")
    out += [norm(ps.get_message(timeout=2)) for _ in range(3)]
    out += [pub.publish("ch1", "hello"), pub.publish("patX", "world")]
    out += [norm(ps.get_message(timeout=2)) for _ in range(2)]
    ps.unsubscribe("ch1")
    out.append(norm(ps.get_message(timeout=2)))
    out.append(pub.publish("ch1", "nobody"))
    out.append(norm(ps.get_message(timeout=0.2)))
    ps.ping("pp")
    out.append(norm(ps.get_message(timeout=2)))
    ps.unsubscribe()
    ps.punsubscribe()
    out += [norm(ps.get_message(timeout=2)) for _ in range(2)]
    ps.subscribe("ch3")
    out.append(norm(ps.get_message(timeout=2)))
    pub.publish("ch3", "again")
    out.append(norm(ps.get_message(timeout=2)))
    ps.close()

    got = []
    ps2 = r.pubsub()
    ps2.subscribe(**{"rt": lambda m: got.append(norm(m["data"]))})
    worker = ps2.run_in_thread(sleep_time=0.02, daemon=True)
    time.sleep(0.1)
    for i in range(5):
        pub.publish("rt", str(i))
    end = time.time() + 3
    while len(got) < 5 and time.time() < end:
        time.sleep(0.02)
    worker.stop()
    worker.join(timeout=2)
    ps2.close()
    out.append(got)
    end = time.time() + 2  # respguard drops the subscriptions when the client goes
    while time.time() < end and any(n for _, n in pub.pubsub_numsub("ch1", "ch3", "rt")):
        time.sleep(0.02)
    out.append(norm(pub.pubsub_numsub("ch1", "ch3", "rt")))
    return out


def sc_blocking(port, direct):
    r = redis.Redis(port=port, socket_timeout=10)
    w = redis.Redis(port=direct)
    r.delete("bq", "bz", "bq2", "bq3")

    def feed():
        time.sleep(0.3)
        w.rpush("bq", "a")
        time.sleep(0.2)
        w.zadd("bz", {"m": 1})
        time.sleep(0.2)
        w.rpush("bq2", "x")

    threading.Thread(target=feed, daemon=True).start()
    t0 = time.time()
    out = [norm(r.blpop("bq", timeout=5)), norm(r.bzpopmin("bz", timeout=5)),
           norm(r.blmove("bq2", "bq3", 5, "LEFT", "RIGHT"))]
    check(time.time() - t0 < 3, "blocked calls were not woken in time")
    t0 = time.time()
    out += [norm(r.brpop("empty", timeout=1)), norm(r.execute_command("BLPOP", "empty", "0.2"))]
    check(time.time() - t0 < 3, "blocking timeouts took too long")
    out.append(outcome(r.execute_command, "BLPOP", "x", "-1"))

    # Several consumers on one list, woken together: every element reaches exactly one.
    w.delete("jobs")
    got = []

    def consume(_i):
        c = redis.Redis(port=port, socket_timeout=8)
        got.append(c.blpop("jobs", timeout=5))

    threads = [threading.Thread(target=consume, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    w.rpush("jobs", *range(4))
    for t in threads:
        t.join(8)
    check(sorted(v[1] for v in got if v) == [b"0", b"1", b"2", b"3"], f"consumers got {got}")
    return out


def sc_watch_retry(port, direct):
    r = redis.Redis(connection_pool=redis.ConnectionPool(port=port, socket_timeout=10))
    r.set("wc", 0)
    stop = threading.Event()
    mods = [0]

    def modifier():
        m = redis.Redis(port=direct)
        while not stop.is_set():
            m.incr("wc")
            mods[0] += 1
            time.sleep(0.002)

    mt = threading.Thread(target=modifier, daemon=True)
    mt.start()
    attempts = [0]

    def tx(pipe):
        attempts[0] += 1
        v = int(pipe.get("wc"))
        time.sleep(0.001)
        pipe.multi()
        pipe.set("wc", v + 1)

    def work(_i):
        for _ in range(15):
            r.transaction(tx, "wc")

    errors = run_threads(work, 4, 25)
    stop.set()
    mt.join(2)
    check(not errors, f"errors: {errors[:3]}")
    final = int(r.get("wc"))
    # 60 committed read-modify-write increments plus the modifier's: nothing lost, nothing doubled.
    check(final == 60 + mods[0], f"wc = {final}, expected 60 + {mods[0]} (lost or double update)")

    p = r.pipeline()
    p.watch("wf")
    p.get("wf")
    redis.Redis(port=direct).set("wf", "x")
    p.multi()
    p.set("wf", "y")
    return [final - mods[0], attempts[0] >= 60, outcome(p.execute), norm(r.get("wf"))]


def sc_select_db(port, _direct):
    redis.Redis(port=port).flushall()
    r3 = redis.Redis.from_url(f"redis://127.0.0.1:{port}/3")
    r3.set("indb3", "yes")
    r0 = redis.Redis(port=port)
    p = r3.pipeline()
    p.get("indb3")
    p.dbsize()
    return [norm(r3.get("indb3")), norm(r0.get("indb3")), r3.dbsize(), norm(p.execute()),
            norm(redis.Redis(port=port, db=3).get("indb3")),
            outcome(lambda: redis.Redis(port=port, db=99).ping()),
            outcome(r0.execute_command, "SELECT", "x")]


def sc_client_name(port, _direct):
    c = redis.Redis(port=port, client_name="myname")
    out = [norm(c.client_getname())]
    c.client_setname("other")
    out.append(norm(c.client_getname()))
    out.append(outcome(c.client_setname, "bad name"))
    out.append(any(x.get("name") == "other" for x in c.client_list()))
    info = c.client_info()
    out += [info.get("name"), info.get("db"), isinstance(c.client_id(), int)]
    return out


def sc_scan(port, _direct):
    r = redis.Redis(port=port)
    r.flushall()
    for i in range(0, 600, 100):
        r.mset({f"scan:{j}": j for j in range(i, i + 100)})
    r.hset("sh", mapping={f"f{i}": i for i in range(300)})
    r.sadd("ss", *range(300))
    r.zadd("sz", {str(i): i for i in range(300)})
    return [len(set(r.scan_iter("scan:*"))), len(set(r.scan_iter(match="scan:1*", count=7))),
            len(dict(r.hscan_iter("sh"))), len(set(r.sscan_iter("ss"))),
            len(list(r.zscan_iter("sz"))), len(set(r.scan_iter(_type="hash")))]


def sc_large_values(port, _direct):
    r = redis.Redis(port=port, socket_timeout=20)
    out = []
    for size in [0, 1, 16 * 1024 - 1, 16 * 1024, 64 * 1024 + 3, 1024 * 1024, 16 * 1024 * 1024]:
        v = (b"x" * 1000 + b"\r\n\x00$*") * (size // 1005) + b"y" * (size % 1005)
        r.set("big", v)
        out.append([size, r.get("big") == v])
    p = r.pipeline(transaction=False)
    for i in range(10):
        p.set(f"bigp{i}", b"z" * 500000)
    for i in range(10):
        p.strlen(f"bigp{i}")
    out.append(p.execute()[-3:])
    r.delete("big", *[f"bigp{i}" for i in range(10)])
    return out


def sc_lua(port, _direct):
    r = redis.Redis(port=port)
    out = [norm(r.eval("return {KEYS[1], ARGV[1], redis.call('set', KEYS[1], ARGV[1])}",
                       1, "lk", "lv"))]
    sha = r.script_load("return redis.call('get', KEYS[1])")
    out += [norm(r.evalsha(sha, 1, "lk")), r.script_exists(sha, "0" * 40),
            outcome(r.evalsha, "0" * 40, 0)]
    script = r.register_script("return tonumber(ARGV[1]) * 2")
    out.append(script(args=[21]))
    out.append(outcome(r.eval, "return redis.error_reply('MYERR custom')", 0))
    out.append(outcome(r.eval, "return redis.call('incr', KEYS[1])", 1, "lk"))
    out.append(norm(r.get("lk")))
    return out


def sc_streams(port, direct):
    r = redis.Redis(port=port, socket_timeout=10)
    r.delete("st")
    w = redis.Redis(port=direct)

    def add():
        time.sleep(0.3)
        w.xadd("st", {"f": "v"}, id="1-1")

    threading.Thread(target=add, daemon=True).start()
    out = [norm(r.xread({"st": "$"}, block=5000)), norm(r.xread({"st": "0"}, count=10)),
           norm(r.xread({"st": "$"}, block=200))]
    r.xgroup_create("st", "g", id="0")
    out += [norm(r.xreadgroup("g", "c", {"st": ">"}, count=1, block=100)),
            norm(r.xreadgroup("g", "c", {"st": ">"}, count=1, block=200)),
            norm(r.xpending("st", "g"))]
    return out


def sc_keyspace(port, _direct):
    r = redis.Redis(port=port)
    r.flushall()
    r.set("k:str", "v", ex=100)
    r.rpush("k:list", 1, 2, 3)
    r.hset("k:hash", "a", 1)
    r.sadd("k:set", "a")
    r.zadd("k:zset", {"a": 1.5})
    r.xadd("k:stream", {"a": 1}, id="1-0")
    r.pfadd("k:hll", "a")
    r.setbit("k:bit", 7, 1)
    r.geoadd("k:geo", (13.361389, 38.115556, "Palermo"))
    out = []
    for k in ["k:str", "k:list", "k:hash", "k:set", "k:zset", "k:stream", "k:hll", "k:bit", "k:geo"]:
        out.append([k, norm(r.type(k)), r.ttl(k) > 0, len(r.dump(k)) > 0])
    out += [norm(r.lrange("k:list", 0, -1)), norm(r.hgetall("k:hash")),
            norm(r.zrange("k:zset", 0, -1, withscores=True)), r.pfcount("k:hll"),
            r.bitcount("k:bit")]
    r.restore("k:restored", 0, r.dump("k:hash"))
    out.append(norm(r.hgetall("k:restored")))
    out.append(norm(r.copy("k:str", "k:str2", destination_db=2)))
    out.append(norm(r.execute_command("SWAPDB", 0, 1)))
    out.append(r.exists("k:str"))
    r.execute_command("SWAPDB", 0, 1)
    out += [r.exists("k:str"), r.dbsize(), norm(r.getdel("k:str2")), norm(r.getex("k:str", persist=True)),
            r.ttl("k:str"),
            {db: [v["keys"], v["expires"]] for db, v in r.info("keyspace").items()}]  # no avg_ttl
    return out


def sc_errors(port, _direct):
    r = redis.Redis(port=port)
    r.set("ek", "s")
    cmds = [("LPUSH", "ek", "x"), ("NOSUCHCMD", "a"), ("GET",), ("GET", "a", "b"), ("SET", "a"),
            ("INCR", "ek"), ("SELECT", "100"), ("SELECT", "x"), ("SELECT",), ("PING", "a", "b"),
            ("ECHO",), ("CLIENT",), ("CLIENT", "NOSUCH"), ("AUTH", "x"), ("AUTH", "u", "p"),
            ("HELLO", "4"), ("HELLO", "x"), ("EXEC",), ("DISCARD",), ("UNWATCH",), ("WATCH",),
            ("MULTI", "x"), ("CLIENT", "SETNAME"), ("CLIENT", "SETNAME", "a b"),
            ("CLIENT", "REPLY", "bad"), ("BLPOP", "x", "abc"),
            ("XREAD", "BLOCK", "-1", "STREAMS", "s", "$"), ("EVAL", "return", "x")]
    return [[c, outcome(r.execute_command, *c)] for c in cmds]


SCENARIOS = [
    ("connection pool, 20 threads", sc_pool_threads),
    ("pipelines, transaction=False/True", sc_pipelines),
    ("pubsub: subscribe, psubscribe, get_message, unsubscribe, run_in_thread", sc_pubsub),
    ("blocking pops woken by another client", sc_blocking),
    ("WATCH/MULTI retry loop with a concurrent modifier", sc_watch_retry),
    ("select db via URL /3", sc_select_db),
    ("client_setname / client_info", sc_client_name),
    ("scan_iter, hscan/sscan/zscan", sc_scan),
    ("large values", sc_large_values),
    ("lua: eval, evalsha, script load", sc_lua),
    ("streams: xread block, xreadgroup", sc_streams),
    ("keyspace of all types", sc_keyspace),
    ("error replies", sc_errors),
]


# ------------------------------------------------------------------------------ AUTH

def auth_results(port):
    def attempt(**kw):
        return outcome(lambda: redis.Redis(port=port, **kw).set("a", 1))

    c = redis.Redis(port=port, single_connection_client=True)
    seq = [outcome(c.execute_command, *cmd) for cmd in
           [("AUTH", "wrong"), ("AUTH", "s3cret"), ("SET", "a", "1"),
            ("HELLO", "2", "AUTH", "default", "bad"), ("AUTH", "default", "s3cret"), ("GET", "a")]]
    return [attempt(password="s3cret"), attempt(username="default", password="s3cret"),
            attempt(password="nope"), attempt(username="bob", password="s3cret"),
            outcome(lambda: redis.Redis.from_url(f"redis://:s3cret@127.0.0.1:{port}/2").set("b", 2)),
            seq]


def unauthenticated_results(port):
    c = redis.Redis(port=port, single_connection_client=True)
    return [outcome(c.get, "a"), outcome(c.set, "a", "2"),
            outcome(c.execute_command, "AUTH", "s3cret"), outcome(c.execute_command, "RESET"),
            outcome(c.get, "a")]


# ------------------------------------------------------------------------------ faults

def fault_scenario(procs):
    """Under write load: SIGSTOP redis for 2 s (below request_timeout), then kill -9 and restart
    it. AOF with appendfsync always keeps every acknowledged write across the kill."""
    rproc, rport = procs.start_redis(extra=("--appendonly", "yes", "--appendfsync", "always",
                                            "--appendfilename", "fault.aof"))
    _, pport = procs.start_proxy(rport)
    stop = threading.Event()
    acked, errors, lock = [], [], threading.Lock()
    slowest = [0.0]

    def writer(i):
        r = redis.Redis(port=pport, socket_timeout=10, socket_connect_timeout=2)
        n = 0
        while not stop.is_set():
            k = f"f{i}:{n}"
            n += 1
            t0 = time.time()
            try:
                if r.set(k, k):
                    with lock:
                        acked.append(k)
            except redis.RedisError as e:
                with lock:
                    errors.append((time.time(), f"{type(e).__name__}: {e}"))
                time.sleep(0.02)
            slowest[0] = max(slowest[0], time.time() - t0)

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    check(len(acked) > 0 and not errors, f"steady load failed: {errors[:2]}")

    os.kill(rproc.pid, signal.SIGSTOP)
    time.sleep(2)
    os.kill(rproc.pid, signal.SIGCONT)
    time.sleep(0.7)
    check(not errors, f"errors while redis was stopped 2 s (request_timeout is 5 s): {errors[:2]}")
    check(slowest[0] < 4.5, f"a request took {slowest[0]:.1f} s during the 2 s stop")

    n_before_kill = len(acked)
    killed_at = time.time()
    procs.kill(rproc)
    time.sleep(0.5)
    procs.start_redis(port=rport, extra=("--appendonly", "yes", "--appendfsync", "always",
                                         "--appendfilename", "fault.aof"))
    end = time.time() + 8
    n_at_restart = len(acked)
    while time.time() < end and len(acked) < n_at_restart + 200:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(12)
    check(not any(t.is_alive() for t in threads), "a writer hung after the restart")
    check(any(ts >= killed_at for ts, _ in errors), "no client saw an error while redis was down")
    check(len(acked) >= n_at_restart + 200, "writes did not recover after the restart")
    check(slowest[0] < 11, f"a request took {slowest[0]:.1f} s (hang?)")
    direct = redis.Redis(port=rport)
    pipe = direct.pipeline(transaction=False)
    for k in acked:
        pipe.exists(k)
    missing = [k for k, e in zip(acked, pipe.execute()) if not e]
    check(not missing, f"{len(missing)} acknowledged SETs lost, e.g. {missing[:3]}")
    return f"{len(acked)} acked ({n_before_kill} before the kill), {len(errors)} errors, none lost"


# ------------------------------------------------------------------------------ known issues
# Each returns normally when respguard behaves like Redis and raises Check otherwise.

def ki_blocked_reply_stuck(procs, rport):
    """A dedicated connection closed on release (the worker already keeps 4 idle ones) is closed
    from inside its own reply callback, which skips the worker's flush: the reply (here a popped
    element) waits for the next event on that worker. On a quiet worker the client times out
    and the element is lost."""
    _, pport = procs.start_proxy(rport, workers=1)
    direct = redis.Redis(port=rport)
    direct.delete("kq")
    got = []

    def consume(_i):
        try:
            got.append(redis.Redis(port=pport, socket_timeout=2).blpop("kq", 0))
        except redis.RedisError:
            pass  # counted below

    threads = [threading.Thread(target=consume, args=(i,), daemon=True) for i in range(7)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    for i in range(7):
        direct.rpush("kq", i)
        time.sleep(0.05)
    errors = run_threads(lambda i: threads[i].join(4), 7, 6)
    check(not errors, str(errors))
    check(len(got) == 7, f"{7 - len(got)} of 7 woken BLPOPs never got their (popped) element")


def ki_select_inside_multi(procs, rport):
    """SELECT queued in MULTI: EXEC has an extra element, and the pooled connection keeps the
    wrong database, so the next client's transaction writes into it."""
    _, pport = procs.start_proxy(rport, workers=1)
    direct = redis.Redis(port=rport)
    direct.flushall()
    p = redis.Redis(port=pport).pipeline(transaction=True)
    p.execute_command("SELECT", "4")
    p.set("k", "x")
    res = outcome(p.execute)
    check(res == [True, True], f"EXEC of [SELECT 4, SET] returned {res}")
    time.sleep(0.1)
    q = redis.Redis(port=pport).pipeline(transaction=True)
    q.set("b-key", "from-db0")
    q.execute()
    check(direct.get("b-key") == b"from-db0",
          "another client's MULTI/SET in db 0 was written to db 4")


def ki_subscribe_inside_multi(procs, rport):
    """SUBSCRIBE queued in MULTI leaves the pooled connection subscribed; the next client to get
    it cannot run MULTI or blocking calls."""
    _, pport = procs.start_proxy(rport, workers=1)
    p = redis.Redis(port=pport).pipeline(transaction=True)
    p.execute_command("SUBSCRIBE", "ki-leak")
    p.execute()
    time.sleep(0.1)
    res = outcome(redis.Redis(port=pport).blpop, "ki-empty", 0.1)
    check(res is None, f"another client's BLPOP got {res!r}")


def ki_client_ids(procs, rport):
    """CLIENT ID/LIST are respguard's ids, CLIENT UNBLOCK/KILL go to Redis, which knows other
    ids: unblocking a blocked client does nothing (or hits an unrelated connection)."""
    _, pport = procs.start_proxy(rport, workers=1)
    a = redis.Redis(port=pport, socket_timeout=5)
    a_id = a.client_id()
    res = []
    t = threading.Thread(target=lambda: res.append(a.blpop("ki-nothing", 3)), daemon=True)
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    unblocked = redis.Redis(port=pport).client_unblock(a_id)
    t.join(5)
    check(unblocked and time.time() - t0 < 1.5,
          f"CLIENT UNBLOCK {a_id} returned {unblocked}; the BLPOP ran to its timeout")


def ki_auth_not_enforced(port):
    res = unauthenticated_results(port)
    check(res[0].startswith("AuthenticationError"),
          f"upstream has a password, yet a client that never sent AUTH got {res[0]!r}")


# ------------------------------------------------------------------------------ main

def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    respguard, redis_server = argv[1], argv[2]
    for path in (respguard, redis_server):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"not an executable: {path}", file=sys.stderr)
            return 2

    workdir = tempfile.mkdtemp(prefix="respguard-compat-")
    procs = Processes(respguard, redis_server, workdir)
    failures, xfails, xpasses = [], [], []
    started = time.time()

    def watchdog(_sig, _frame):
        raise TimeoutError(f"watchdog: over {DEADLINE_S} s")

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(DEADLINE_S)

    def report(status, name, detail=""):
        print(f"{status:5s} {name}" + (f"  [{detail}]" if detail else ""), flush=True)

    try:
        _, rport = procs.start_redis()
        proxy, pport = procs.start_proxy(rport)

        for name, fn in SCENARIOS:
            try:
                direct = fn(rport, rport)
                proxied = fn(pport, rport)
                if direct != proxied:
                    raise Check(f"direct: {direct!r}\n      proxy:  {proxied!r}")
                check(proxy.poll() is None, f"respguard exited with {proxy.returncode}")
                report("ok", name)
                if VERBOSE:
                    print(f"      {proxied!r}")
            except (Check, redis.RedisError, AssertionError) as e:
                failures.append(name)
                report("FAIL", name, f"{type(e).__name__}: {e}")

        name = "AUTH through a proxy whose upstream has a password"
        try:
            _, arport = procs.start_redis(extra=("--requirepass", "s3cret"))
            _, apport = procs.start_proxy(arport, password="s3cret")
            direct, proxied = auth_results(arport), auth_results(apport)
            check(direct == proxied, f"direct: {direct!r}\n      proxy:  {proxied!r}")
            report("ok", name)
        except (Check, redis.RedisError) as e:
            failures.append(name)
            report("FAIL", name, str(e))

        name = "faults: SIGSTOP 2 s, kill -9 and restart redis-server under load"
        try:
            report("ok", name, fault_scenario(procs))
        except (Check, redis.RedisError) as e:
            failures.append(name)
            report("FAIL", name, str(e))

        # Bugs found by this suite and fixed: they stay as regression scenarios.
        regressions = [
            ("clients that never AUTH get NOAUTH when the upstream has a password",
             lambda: ki_auth_not_enforced(apport)),
            ("blocked replies are delivered with >4 dedicated connections per worker",
             lambda: ki_blocked_reply_stuck(procs, rport)),
            ("SELECT inside MULTI (EXEC reply, pooled connection's db)",
             lambda: ki_select_inside_multi(procs, rport)),
            ("SUBSCRIBE inside MULTI does not poison the pooled connection",
             lambda: ki_subscribe_inside_multi(procs, rport)),
        ]
        for name, fn in regressions:
            try:
                fn()
                report("ok", name)
            except (Check, redis.RedisError) as e:
                failures.append(name)
                report("FAIL", name, str(e))
        # CLIENT KILL/UNBLOCK are refused with a clear error (docs/architecture.md): Redis's ids
        # differ from respguard's, so they cannot work as against Redis.
        known = [
            ("KNOWN: CLIENT UNBLOCK with the id from CLIENT ID",
             lambda: ki_client_ids(procs, rport)),
        ]
        for name, fn in known:
            try:
                fn()
                xpasses.append(name)
                report("XPASS", name, "fixed? remove it from the known issues")
            except (Check, redis.RedisError) as e:
                xfails.append(name)
                report("XFAIL", name, str(e))
    except Exception as e:  # setup errors, the watchdog
        failures.append("harness")
        print(f"FAIL  harness: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
    finally:
        signal.alarm(0)
        procs.kill_all()
        if failures:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"{len(SCENARIOS) + 6 - len(failures)} passed, "
          f"{len(failures)} failed, {len(xfails)} known issues, {len(xpasses)} fixed known issues, "
          f"{time.time() - started:.1f} s")
    if STRICT and xfails:
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
