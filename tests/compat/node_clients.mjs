// Compatibility check with the two common Node.js Redis clients, ioredis and node-redis (v4+):
// every scenario runs once directly against redis-server and once through respguard, and the
// results are compared. Not part of ctest: node packages are not a project dependency.
//
// Run by hand (node 18+):
//   mkdir -p /tmp/nodeclients && cd /tmp/nodeclients && npm init -y && npm install ioredis redis
//   node tests/compat/node_clients.mjs build/respguard "$(command -v redis-server)" /tmp/nodeclients
//
// Exits 0 when every scenario matches (up to the differences listed in ACCEPTED), 1 otherwise.

import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';

const [respguardBin, redisBin, modulesDir = process.env.NODE_CLIENTS_DIR ?? '/tmp/nodeclients'] =
  process.argv.slice(2);
if (!respguardBin || !redisBin) {
  console.error('usage: node node_clients.mjs RESPGUARD_BIN REDIS_SERVER_BIN [DIR_WITH_node_modules]');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modulesDir), 'package.json'));
const IORedis = require('ioredis');
const nodeRedis = require('redis');
const VERBOSE = !!process.env.VERBOSE;

// ------------------------------------------------------------------------------ processes

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function waitPort(port, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

const children = new Set();
function startProcess(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  child.stderrText = () => stderr;
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
function stopProcess(child, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}
function cleanup() {
  for (const c of children) c.kill('SIGKILL');
}
process.on('exit', cleanup);

class Env {
  async start() {
    this.redisPort = await freePort();
    this.proxyPort = await freePort();
    await this.startRedis();
    await this.startProxy();
  }
  async startRedis() {
    this.redis = startProcess(redisBin, ['--port', String(this.redisPort), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--daemonize', 'no']);
    await waitPort(this.redisPort);
  }
  async startProxy() {
    // Builds with an admin HTTP listener get a free port for it, so parallel runs do not clash.
    if (this.adminArgs === undefined) {
      const help = spawnSync(respguardBin, ['--help'], { encoding: 'utf8' }).stdout ?? '';
      this.adminArgs = help.includes('--admin') ? ['--admin', `127.0.0.1:${await freePort()}`] : [];
    }
    this.proxy = startProcess(respguardBin, ['--listen', `127.0.0.1:${this.proxyPort}`,
      '--upstream', `127.0.0.1:${this.redisPort}`, '--log-level', 'warn', ...this.adminArgs]);
    await waitPort(this.proxyPort);
  }
  // Restarts whatever the client talks to: redis-server when direct, respguard when proxied.
  async restartTarget(port, downMs) {
    if (port === this.redisPort) {
      await stopProcess(this.redis, 'SIGKILL');
      await sleep(downMs);
      await this.startRedis();
      // respguard (not the target here) reconnects with backoff; the next scenario needs it.
      await this.waitProxyUpstream();
    } else {
      await stopProcess(this.proxy, 'SIGKILL');
      await sleep(downMs);
      await this.startProxy();
    }
  }
  // Until respguard forwards again: its PING is local, so ask for a key, on fresh connections
  // until enough in a row succeed that every worker's shared connections are back.
  async waitProxyUpstream(ms = 15000) {
    const end = Date.now() + ms;
    let streak = 0;
    while (Date.now() < end && streak < 16) {
      const reply = await new Promise((resolve) => {
        const s = net.connect(this.proxyPort, '127.0.0.1', () => s.write('*2\r\n$3\r\nGET\r\n$1\r\nx\r\n'));
        s.on('data', (d) => { s.destroy(); resolve(String(d)); });
        s.on('error', () => resolve('-ERR'));
      });
      streak = reply.startsWith('-') ? 0 : streak + 1;
      if (streak === 0) await sleep(50);
    }
    if (streak < 16) throw new Error('respguard did not reconnect to redis-server');
  }
  async stop() {
    if (this.proxy) await stopProcess(this.proxy);
    if (this.redis) await stopProcess(this.redis);
  }
}

// ------------------------------------------------------------------------------ helpers

const plain = (v) => JSON.parse(JSON.stringify(v, (_k, x) => {
  if (x instanceof Error) return `ERR ${x.message}`;
  if (x instanceof Map) return Object.fromEntries([...x.entries()].map(([a, b]) => [String(a), b]));
  if (x instanceof Set) return [...x].sort();
  if (typeof x === 'bigint') return String(x);
  if (x && x.type === 'Buffer' && Array.isArray(x.data)) return Buffer.from(x.data).toString('latin1');
  return x;
}));
const settle = async (p) => { try { return await p; } catch (e) { return `ERR ${e.message}`; } };
const withTimeout = (p, ms, what) => Promise.race([
  p, sleep(ms).then(() => { throw new Error(`timeout: ${what} took over ${ms} ms`); })]);
const waitFor = async (pred, ms = 3000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (pred()) return true; await sleep(20); }
  return false;
};
const silence = (c) => { c.on('error', () => {}); return c; };

// ------------------------------------------------------------------------------ ioredis

async function ioredisBasic({ port }) {
  const r = silence(new IORedis({ port, maxRetriesPerRequest: 1 }));
  const out = {};
  await r.flushall();
  out.setget = [await r.set('a', '1'), await r.get('a'), await r.incr('a')];
  out.pipeline = plain(await r.pipeline().set('p', 'x').get('p').incr('p').lpush('p', 1)
    .hset('h', 'f', 'v').hgetall('h').exec());
  out.multi = plain(await r.multi().set('m', 1).incr('m').get('m').exec());
  out.multiError = await settle(r.multi().set('m', 1).lpush('m', 1).incr('m').exec().then(plain));
  out.multiAbort = await settle(r.multi().set('m2', 1).call('NOSUCHCMD').exec().then(plain));
  out.mGet = await r.get('m');
  out.errors = [await settle(r.call('NOSUCHCMD', 'x')), await settle(r.call('GET')),
    await settle(r.lpush('a', 'x'))];
  out.lua = [await r.eval("return {KEYS[1], ARGV[1]}", 1, 'k', 'v')];
  r.defineCommand('double', { numberOfKeys: 0, lua: 'return tonumber(ARGV[1]) * 2' });
  out.lua.push(await r.double(21), await r.double(4));
  const big = 'x'.repeat(3 * 1024 * 1024 + 7);
  await r.set('big', big);
  out.big = (await r.get('big')) === big;
  const db3 = silence(new IORedis({ port, db: 3, connectionName: 'io-db3' }));
  await db3.set('in3', 'yes');
  out.db = [await db3.get('in3'), await r.get('in3'), await db3.client('GETNAME')];
  db3.disconnect();
  const keys = [];
  await new Promise((resolve, reject) => {
    for (let i = 0; i < 300; i++) r.set(`scan:${i}`, i);
    r.scanStream({ match: 'scan:*', count: 20 }).on('data', (k) => keys.push(...k))
      .on('end', resolve).on('error', reject);
  });
  out.scanStream = new Set(keys).size;
  r.disconnect();
  return out;
}

async function ioredisAutoPipelining({ port }) {
  const r = silence(new IORedis({ port, enableAutoPipelining: true }));
  await r.del('apc');
  const n = 5000;
  const sets = await Promise.all(Array.from({ length: n }, (_, i) => r.set(`ap:${i}`, i)));
  const gets = await Promise.all(Array.from({ length: n }, (_, i) => r.get(`ap:${i}`)));
  const bad = gets.filter((v, i) => v !== String(i)).length;
  const mixed = await Promise.all([r.incr('apc'), settle(r.lpush('ap:1', 'x')), r.incr('apc'),
    r.ping(), r.echo('e'), r.incr('apc')]);
  r.disconnect();
  return { ok: sets.every((s) => s === 'OK'), bad, mixed: plain(mixed) };
}

async function ioredisPubSub({ port }) {
  const sub = silence(new IORedis({ port }));
  const pub = silence(new IORedis({ port }));
  const got = [];
  sub.on('message', (ch, msg) => got.push(['message', ch, msg]));
  sub.on('pmessage', (pat, ch, msg) => got.push(['pmessage', pat, ch, msg]));
  const out = {};
  out.subscribe = await sub.subscribe('c1', 'c2');
  out.psubscribe = await sub.psubscribe('p*');
  out.publish = [await pub.publish('c1', 'one'), await pub.publish('px', 'two'),
    await pub.publish('c2', 'three')];
  await waitFor(() => got.length >= 3);
  out.unsubscribe = await sub.unsubscribe('c1');
  out.publishAfter = await pub.publish('c1', 'lost');
  out.ping = await settle(sub.ping());
  // (ioredis waits forever on a bare PUNSUBSCRIBE, even against Redis: name the patterns.)
  out.leave = [await sub.punsubscribe('p*'), await sub.unsubscribe('c2')];
  out.afterAll = await settle(sub.get('anything'));
  out.got = got;
  sub.disconnect();
  pub.disconnect();
  return out;
}

async function ioredisBlocking({ port }) {
  const r = silence(new IORedis({ port }));
  const w = silence(new IORedis({ port }));
  await r.del('bl', 'bl2');
  const t0 = Date.now();
  const popped = r.blpop('bl', 5);
  const popped2 = r.brpop('bl2', 5);  // queued behind the first on the same connection
  setTimeout(() => w.rpush('bl', 'a'), 300);
  setTimeout(() => w.rpush('bl2', 'b'), 600);
  const out = { blpop: await popped, brpop: await popped2 };
  out.wokeInTime = Date.now() - t0 < 3000;
  out.timeout = await r.blpop('empty', 0.2);
  out.after = await r.ping();
  r.disconnect();
  w.disconnect();
  return out;
}

async function ioredisReconnect({ port, env }) {
  const r = silence(new IORedis({ port, lazyConnect: true,
    retryStrategy: () => 100, maxRetriesPerRequest: 20 }));
  await r.connect();
  const out = { before: await r.set('rc', '1') };
  await env.restartTarget(port, 500);
  out.after = await settle(withTimeout(r.set('rc', '2'), 10000, 'SET after restart'));
  out.get = await settle(r.get('rc'));
  r.disconnect();
  return out;
}

// ------------------------------------------------------------------------------ node-redis

async function nodeRedisScenario({ port, resp }) {
  const opts = { socket: { port, host: '127.0.0.1', reconnectStrategy: false }, RESP: resp };
  const c = await nodeRedis.createClient({ ...opts, name: 'nr-main' }).on('error', () => {}).connect();
  const out = {};
  await c.flushAll();
  out.info = plain([await c.clientGetName(), (await c.sendCommand(['CLIENT', 'INFO'])).toString()
    .match(/lib-name=(\S*)/)?.[1]]);
  out.basic = plain([await c.set('a', '1'), await c.get('a'), await c.incr('a'),
    await c.hSet('h', { f1: 'v1', f2: 'v2' }), await c.hGetAll('h')]);
  out.tx = plain(await c.multi().set('t', '1').incr('t').get('t').exec());
  out.txError = await settle(c.multi().set('t', '1').lPush('t', 'x').incr('t').exec().then(plain));
  out.autoPipeline = plain(await Promise.all(Array.from({ length: 1000 },
    (_, i) => c.set(`nr:${i}`, String(i)))).then((r) => r.every((x) => x === 'OK')));
  out.errors = [await settle(c.sendCommand(['NOSUCHCMD'])), await settle(c.lPush('a', 'x'))];
  const scanned = [];
  for await (const keys of c.scanIterator({ MATCH: 'nr:*', COUNT: 100 })) scanned.push(...keys);
  out.scan = new Set(scanned).size;
  out.db = await (async () => {
    const d = await nodeRedis.createClient({ ...opts, database: 3 }).on('error', () => {}).connect();
    await d.set('in3', 'yes');
    const v = [await d.get('in3'), await c.get('in3')];
    d.destroy();
    return v;
  })();

  // Watch: a concurrent change aborts the transaction.
  const w = c.duplicate();
  await w.connect();
  await w.watch('wk');
  await c.set('wk', 'changed');
  out.watch = await settle(w.multi().set('wk', 'mine').exec().then(plain));
  w.destroy();

  // Pub/sub on a duplicate connection.
  const sub = c.duplicate();
  await sub.connect();
  const msgs = [];
  await sub.subscribe('n1', (m, ch) => msgs.push([ch, m]));
  await sub.pSubscribe('np*', (m, ch) => msgs.push([ch, m]));
  out.publish = [await c.publish('n1', 'hi'), await c.publish('npx', 'pat')];
  await waitFor(() => msgs.length >= 2);
  await sub.unsubscribe('n1');
  out.publishAfter = await c.publish('n1', 'gone');
  out.msgs = msgs.sort();
  sub.destroy();

  // A pool: blocking calls on their own connections while the pool keeps serving.
  const pool = await nodeRedis.createClientPool(opts, { minimum: 1, maximum: 4 })
    .on('error', () => {}).connect();
  const t0 = Date.now();
  const blocked = pool.blPop('pq', 5);
  await sleep(100);
  out.poolPing = await pool.ping();
  await c.rPush('pq', 'v');
  out.poolBlPop = plain(await blocked);
  out.poolWoke = Date.now() - t0 < 3000;
  pool.destroy();

  if (resp === 3) {
    // Client-side caching: CLIENT TRACKING ON at connect, invalidation pushes in band.
    const cached = await nodeRedis.createClient({ ...opts, clientSideCache: { ttl: 0, maxEntries: 0 } })
      .on('error', () => {}).connect();
    await c.set('csc', 'v1');
    const first = await cached.get('csc');
    await c.set('csc', 'v2');
    await sleep(200);
    const second = await cached.get('csc');
    out.clientSideCache = [first, second];
    cached.destroy();

    const inv = [];
    const ei = await nodeRedis.createClient({ ...opts, emitInvalidate: true }).on('error', () => {})
      .on('invalidate', (k) => inv.push(String(k))).connect();
    await ei.get('inv');
    await c.set('inv', 'x');
    await waitFor(() => inv.length > 0, 2000);
    out.emitInvalidate = inv;
    out.afterInvalidate = await ei.get('inv');
    ei.destroy();
  }
  c.destroy();
  return out;
}

// ------------------------------------------------------------------------------ running

const SCENARIOS = {
  'ioredis basic, pipeline, multi, lua, db, scanStream': ioredisBasic,
  'ioredis enableAutoPipelining': ioredisAutoPipelining,
  'ioredis pubsub': ioredisPubSub,
  'ioredis blocking woken by another client': ioredisBlocking,
  'node-redis RESP2': (a) => nodeRedisScenario({ ...a, resp: 2 }),
  'node-redis RESP3 (client-side caching)': (a) => nodeRedisScenario({ ...a, resp: 3 }),
  'ioredis lazyConnect + reconnect when the target restarts': ioredisReconnect,
};

// Known, acceptable differences: scenario -> paths whose values may differ.
const ACCEPTED = {
  // respguard answers CLIENT SETINFO itself (Redis 7.2 behaviour) even in front of Redis 7.0,
  // which rejects it; node-redis ignores that error, so only CLIENT INFO shows the difference.
  'node-redis RESP2': ['.info.1'],
  'node-redis RESP3 (client-side caching)': ['.info.1'],
};

function diff(a, b, pathText = '') {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => diff(a[k], b[k], `${pathText}.${k}`));
  }
  return [`${pathText || '.'}: direct=${JSON.stringify(a)} proxy=${JSON.stringify(b)}`];
}

async function main() {
  const env = new Env();
  let failures = 0;
  try {
    await env.start();
    for (const [name, fn] of Object.entries(SCENARIOS)) {
      if (process.env.ONLY && !name.includes(process.env.ONLY)) continue;
      const results = [];
      for (const port of [env.redisPort, env.proxyPort]) {
        const t0 = Date.now();
        results.push(await withTimeout(fn({ port, env }), 30000, name).catch((e) => {
          if (VERBOSE) console.log(e);
          return `ERR ${e.message}`;
        }).then(plain));
        if (VERBOSE) console.log(`  ${port === env.redisPort ? 'direct' : 'proxy '} ${Date.now() - t0} ms`);
      }
      const problems = diff(results[0], results[1])
        .filter((p) => !(ACCEPTED[name] ?? []).some((a) => p.startsWith(a)));
      for (const [what, child] of [['respguard', env.proxy], ['redis-server', env.redis]]) {
        if (child.exitCode !== null || child.signalCode !== null) {
          problems.push(`${what} exited (${child.exitCode ?? child.signalCode}): ` +
            child.stderrText().split('\n').slice(-5).join(' | '));
          await (what === 'respguard' ? env.startProxy() : env.startRedis());
        }
      }
      if (VERBOSE) console.log(JSON.stringify(results[1]));
      if (problems.length === 0) {
        console.log(`ok   ${name}`);
      } else {
        failures++;
        console.log(`FAIL ${name}`);
        for (const p of problems) console.log(`     ${p}`);
      }
    }
  } finally {
    await env.stop();
  }
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  cleanup();
  process.exit(1);
});
