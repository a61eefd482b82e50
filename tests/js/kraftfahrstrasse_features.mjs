// kraftfahrstrasse (npm @verkehrsministerium/kraftfahrstrasse) against the router, feature by feature
// (run by tests/interop/test_kraftfahrstrasse.py).
//
// Usage: node kraftfahrstrasse_features.mjs <ws-url> <realm> --serializer json|msgpack [--sync]
//
// Opens three kraftfahrstrasse sessions (A, B, C) over WebSocket (the only transport the package has in
// Node: NodeWebSocketTransport) and exercises each feature, catching failures per feature so one broken
// feature does not hide the others. With --sync it prints {"stage": "ready", ...} once its procedures for
// the Python side are registered (an error-raising one, a progressive one, an echo) and waits for a line on
// stdin before leaving; the Python test calls them from Autobahn|Python in between.
//
// Output: the last line on stdout is one JSON object {"ok": bool, "features": {feature: {"ok": bool,
// "checks": [...passed], "error": "..."}}, ...}; exit code 0 when every feature passed, 1 otherwise,
// 3 on the overall timeout. Buffers are written as {"$bytes": "<hex>"}.

import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { isDeepStrictEqual, parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const kfs = require('@verkehrsministerium/kraftfahrstrasse');
const kfsVersion = require('@verkehrsministerium/kraftfahrstrasse/package.json').version;

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: { serializer: { type: 'string', default: 'json' }, sync: { type: 'boolean', default: false } },
});
const [url, realm] = positionals;
const serializerName = opts.serializer;
const binary = serializerName !== 'json';

const results = { ok: false, version: kfsVersion, node: process.version, serializer: serializerName, features: {} };
const say = (obj) => process.stdout.write(JSON.stringify(obj, jsonSafe) + '\n');

function jsonSafe(key, value) {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('hex') };
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) return { $bytes: Buffer.from(value.data).toString('hex') };
  return value;
}
const describe = (v) => JSON.stringify(v, jsonSafe);

const overall = setTimeout(() => {
  say({ ...results, ok: false, error: 'overall timeout (20 s)' });
  process.exit(3);
}, 20000);

class CheckError extends Error {}
function check(cond, what, got) {
  if (!cond) throw new CheckError(arguments.length > 2 ? `${what}; got ${describe(got)}` : what);
}
function checkEqual(got, expected, what) {
  check(isDeepStrictEqual(got, expected), `${what}: expected ${describe(expected)}`, got);
}
function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new CheckError(`timed out after ${ms} ms waiting for ${what}`)), ms); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errText = (e) => (e instanceof Error ? e.message : describe(e));

// The caller's promise rejects with what kraftfahrstrasse gives: the ERROR's URI only (Caller.js: reject(msg[4])).
async function callRejects(promise, what) {
  try {
    const r = await withTimeout(promise, 5000, what);
    throw new CheckError(`${what}: expected an error, got result ${describe(r)}`);
  } catch (e) {
    if (e instanceof CheckError) throw e;
    return e;
  }
}

async function feature(name, fn) {
  const entry = { ok: false, checks: [] };
  results.features[name] = entry;
  try {
    await fn((c) => entry.checks.push(c));
    entry.ok = true;
  } catch (e) {
    entry.error = errText(e);
    process.stderr.write(`kraftfahrstrasse_features.mjs: ${serializerName}: ${name} FAILED: ${entry.error}\n`);
  }
}

function makeSerializer() {
  if (serializerName === 'json') return new kfs.JSONSerializer();
  if (serializerName === 'msgpack') return new kfs.NodeMSGPackSerializer();
  throw new Error(`kraftfahrstrasse has no serializer ${serializerName}`);
}

async function open(label) {
  const conn = new kfs.Connection({
    endpoint: url,
    realm,
    serializer: makeSerializer(),
    transport: kfs.NodeWebSocketTransport,
    authProvider: new kfs.AnonymousAuthProvider(),
    logFunction: (level, when, file, content) => {
      if (level === 'ERROR') process.stderr.write(`${label} [${level}] ${file}: ${describe(content)}\n`);
    },
  });
  const welcome = await withTimeout(conn.Open(), 5000, `${label} to join`);
  return { label, conn, welcome, id: conn.sessionId };
}

// events delivered to a handler, awaited one by one
function queue() {
  const items = [];
  const waiters = [];
  return {
    handler: (args, kwArgs, details) => {
      const item = { args, kwArgs, details };
      if (waiters.length) waiters.shift()(item); else items.push(item);
    },
    next: (what, ms = 3000) => (items.length ? Promise.resolve(items.shift())
      : withTimeout(new Promise((r) => waiters.push(r)), ms, what)),
    get pending() { return items.length; },
  };
}

const P = `com.kfs.${serializerName}`;
const sessions = {};

async function main() {
  await feature('connect', async (ok) => {
    const [A, B, C] = await Promise.all([open('A'), open('B'), open('C')]);
    Object.assign(sessions, { A, B, C });
    for (const s of [A, B, C]) check(Number.isSafeInteger(s.id) && s.id > 0, `${s.label} session id`, s.id);
    check(new Set([A.id, B.id, C.id]).size === 3, 'three distinct session ids', [A.id, B.id, C.id]);
    check(A.welcome && A.welcome.roles && A.welcome.roles.broker && A.welcome.roles.dealer,
      'WELCOME announces broker and dealer', A.welcome);
    results.session_ids = [A.id, B.id, C.id];
    ok('three sessions joined');
  });
  if (!results.features.connect.ok) return;
  const { A, B, C } = sessions;

  let addReg;
  await feature('rpc', async (ok) => {
    const seen = [];
    addReg = await B.conn.Register(`${P}.add`, async (args, kwArgs, details) => {
      seen.push({ args, kwArgs, procedure: details.procedure });
      return { args: [args[0] + args[1]], kwArgs: { sum: args[0] + args[1], echo: kwArgs } };
    });
    check(Number.isSafeInteger(addReg.ID()), 'registration id', addReg.ID());
    const kw = { label: 'sum', nested: { list: [1, 'two', null, true, 1.5] }, unicode: 'Grüße ☘ 🍀' };
    const [pending, requestId] = A.conn.Call(`${P}.add`, [2, 3], kw);
    check(Number.isSafeInteger(requestId), 'Call returns a request id', requestId);
    const r = await withTimeout(pending, 5000, 'call result');
    checkEqual(r.args, [5], 'result args');
    checkEqual(r.kwArgs, { sum: 5, echo: kw }, 'result kwargs');
    checkEqual(r.nextResult, null, 'final result has no nextResult');
    checkEqual(seen, [{ args: [2, 3], kwArgs: kw, procedure: `${P}.add` }], 'invocation at the callee');
    ok('register + call args/kwargs');
  });

  await feature('call_errors', async (ok) => {
    await B.conn.Register(`${P}.fail`, async (args) => {
      throw new kfs.WampError('com.kfs.error.app', ['bad', args[0]], { code: 42, why: 'test' });
    });
    const e1 = await callRejects(A.conn.Call(`${P}.fail`, [7])[0], 'application error');
    checkEqual(e1, 'com.kfs.error.app', 'caller sees the error URI raised by the kraftfahrstrasse callee');
    ok('application error URI (kraftfahrstrasse caller; args/kwargs checked from Autobahn|Python)');
    const e2 = await callRejects(A.conn.Call(`${P}.nobody`, [1])[0], 'no_such_procedure');
    checkEqual(e2, 'wamp.error.no_such_procedure', 'error for an unregistered procedure');
    ok('no_such_procedure');
  });

  let ackSub;
  const ackEvents = queue();
  await feature('pubsub_acknowledged', async (ok) => {
    ackSub = await A.conn.Subscribe(`${P}.topic`, ackEvents.handler);
    check(Number.isSafeInteger(ackSub.ID()), 'subscription id', ackSub.ID());
    const kw = { n: 1, nested: { a: [true, null] }, unicode: 'Grüße ☘' };
    const publication = await B.conn.Publish(`${P}.topic`, ['hello', 1], kw, { acknowledge: true });
    const publicationId = await withTimeout(publication.OnPublished(), 3000, 'PUBLISHED');
    check(Number.isSafeInteger(publicationId) && publicationId > 0, 'publication id', publicationId);
    const ev = await ackEvents.next('event');
    checkEqual(ev.args, ['hello', 1], 'event args');
    checkEqual(ev.kwArgs, kw, 'event kwargs');
    checkEqual(ev.details.publicationId, publicationId, 'event publication id = PUBLISHED id');
    ok('publish acknowledged, event with args/kwargs');
  });

  await feature('progressive_caller', async (ok) => {
    // B streams three progressive results; A asks for them with receive_progress
    await B.conn.Register(`${P}.count`, async (args, kwArgs, details) => {
      const n = args[0];
      const step = async (i) => {
        await sleep(20);
        return { args: [i], kwArgs: { progress_seen: !!details.receive_progress },
          nextResult: i < n ? step(i + 1) : null };
      };
      return step(1);
    });
    let r = await withTimeout(A.conn.Call(`${P}.count`, [3], {}, { receive_progress: true })[0], 3000, 'first result');
    const got = [];
    for (;;) {
      got.push({ args: r.args, kwArgs: r.kwArgs, more: r.nextResult !== null });
      if (!r.nextResult) break;
      r = await withTimeout(r.nextResult, 3000, 'next progressive result');
    }
    checkEqual(got, [1, 2, 3].map((i) => ({ args: [i], kwArgs: { progress_seen: true }, more: i < 3 })),
      'progressive results then the final one');
    ok('two progressive results and a final result, in order');
    // without receive_progress the callee sends only the final result
    const plain = await withTimeout(A.conn.Call(`${P}.count`, [3])[0], 3000, 'non-progressive call');
    checkEqual([plain.args, plain.nextResult], [[3], null], 'without receive_progress: only the final result');
    ok('without receive_progress only the final result');
  });
  // progressive_callee: B above is the progressive callee; its YIELDs are the results A got (and the
  // Python side calls it from Autobahn|Python with on_progress as well).
  results.features.progressive_callee = { ...results.features.progressive_caller,
    checks: results.features.progressive_caller.checks.map((c) => `callee side of: ${c}`) };

  await feature('slow_calls', async (ok) => {
    await B.conn.Register(`${P}.sleep`, async (args) => {
      await sleep(args[0]);
      return { args: [args[0]] };
    });
    const order = [];
    const delays = [300, 50, 150];
    const calls = delays.map((d) => A.conn.Call(`${P}.sleep`, [d])[0].then((r) => { order.push(r.args[0]); return r.args[0]; }));
    const answers = await withTimeout(Promise.all(calls), 3000, 'three slow calls');
    checkEqual(answers, delays, 'each call got its own answer');
    checkEqual(order, [50, 150, 300], 'answers arrived in the order the callee finished');
    ok('three calls in flight, answered out of order');
  });

  await feature('call_cancel', async (ok) => {
    const interrupted = [];
    await B.conn.Register(`${P}.wait`, (args, kwArgs, details) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve({ args: ['finished'] }), 3000);
      details.onCancel.then(() => {
        clearTimeout(timer);
        interrupted.push(args[0]);
        reject(new kfs.WampError('wamp.error.canceled', ['stopped', args[0]]));
      });
    }));
    for (const mode of ['kill', 'killnowait']) {
      const [pending, requestId] = A.conn.Call(`${P}.wait`, [mode]);
      await sleep(100);
      A.conn.CancelCall(requestId, mode);
      const e = await callRejects(pending, `canceled call (${mode})`);
      checkEqual(e, 'wamp.error.canceled', `error URI after CANCEL mode ${mode}`);
      for (let i = 0; i < 40 && !interrupted.includes(mode); i++) await sleep(25);
      check(interrupted.includes(mode), `callee got the INTERRUPT (${mode})`, interrupted);
      ok(`CANCEL mode ${mode}: caller gets wamp.error.canceled, callee's onCancel fires`);
    }
    {
      // CancelCall without a mode: kraftfahrstrasse sends {mode: ""}, which the router reads as its default
      const [pendingDefault, defaultId] = A.conn.Call(`${P}.wait`, ['default']);
      await sleep(100);
      A.conn.CancelCall(defaultId);
      checkEqual(await callRejects(pendingDefault, 'canceled call (no mode)'), 'wamp.error.canceled',
        'error URI after CANCEL without a mode');
      for (let i = 0; i < 40 && !interrupted.includes('default'); i++) await sleep(25);
      check(interrupted.includes('default'), 'callee got the INTERRUPT (no mode: killnowait)', interrupted);
      ok('CANCEL without a mode (sent as mode ""): the router\'s default, killnowait');
    }
    const [pending, requestId] = A.conn.Call(`${P}.sleep`, [300]);
    await sleep(50);
    A.conn.CancelCall(requestId, 'skip');
    checkEqual(await callRejects(pending, 'canceled call (skip)'), 'wamp.error.canceled', 'error URI after CANCEL mode skip');
    ok('CANCEL mode skip');
    // B is still fine after its late answers were dropped
    checkEqual((await withTimeout(A.conn.Call(`${P}.add`, [1, 1])[0], 3000, 'call after cancels')).args, [2], 'callee still works');
  });

  await feature('call_timeout', async (ok) => {
    const before = Date.now();
    const [pending] = A.conn.Call(`${P}.wait`, ['timeout'], {}, { timeout: 300 });
    const e = await callRejects(pending, 'call with timeout 300 ms');
    const took = Date.now() - before;
    checkEqual(e, 'wamp.error.timeout', 'error URI after the call timeout');
    check(took >= 250 && took < 2500, 'timed out after about 300 ms', took);
    ok('CALL timeout: caller gets wamp.error.timeout');
    // the router interrupts the callee (it announced call_canceling)
    await sleep(200);
    const done = await withTimeout(A.conn.Call(`${P}.add`, [2, 2])[0], 3000, 'call after the timeout');
    checkEqual(done.args, [4], 'callee still answers');
  });

  await feature('pubsub_options', async (ok) => {
    const topic = `${P}.opts`;
    const qs = { A: queue(), B: queue(), C: queue() };
    const subs = [];
    for (const s of [A, B, C]) subs.push(await s.conn.Subscribe(topic, qs[s.label].handler));
    const pub = async (tag, options) => {
      const p = await A.conn.Publish(topic, [tag], {}, { acknowledge: true, ...options });
      await withTimeout(p.OnPublished(), 3000, `PUBLISHED ${tag}`);
    };
    await pub('default');                                   // exclude_me defaults to true: B, C
    await pub('me', { exclude_me: false });                 // A, B, C
    await pub('exclude-B', { exclude_me: false, exclude: [B.id] }); // A, C
    await pub('eligible-C', { exclude_me: false, eligible: [C.id] }); // C
    await pub('eligible-AB-exclude-A', { exclude_me: false, eligible: [A.id, B.id], exclude: [A.id] }); // B
    await pub('end', { exclude_me: false });
    const got = {};
    for (const label of ['A', 'B', 'C']) {
      got[label] = [];
      for (;;) {
        const ev = await qs[label].next(`events at ${label}`);
        got[label].push(ev.args[0]);
        if (ev.args[0] === 'end') break;
      }
    }
    checkEqual(got, {
      A: ['me', 'exclude-B', 'end'],
      B: ['default', 'me', 'eligible-AB-exclude-A', 'end'],
      C: ['default', 'me', 'exclude-B', 'eligible-C', 'end'],
    }, 'who received which publication');
    ok('exclude_me default and false, exclude, eligible, eligible+exclude by session id');
    for (const s of subs) await s.Unsubscribe();
  });

  await feature('pattern_subscriptions', async (ok) => {
    const exact = queue(); const prefix = queue(); const wildcard = queue();
    const subs = [
      await B.conn.Subscribe(`${P}.pat.a.ev`, exact.handler),
      await B.conn.Subscribe(`${P}.pat`, prefix.handler, { match: kfs.EMatchPolicy.Prefix }),
      await B.conn.Subscribe(`${P}.pat..ev`, wildcard.handler, { match: kfs.EMatchPolicy.Wildcard }),
    ];
    check(new Set(subs.map((s) => s.ID())).size === 3, 'three subscriptions', subs.map((s) => s.ID()));
    for (const topic of [`${P}.pat.a.ev`, `${P}.pat.b.other`, `${P}.pat.c.ev`]) {
      await (await A.conn.Publish(topic, [topic], {}, { acknowledge: true })).OnPublished();
    }
    // prefix matching is by string prefix (spec: "...emergency" matches "...emergency-low"); wildcard by component
    await (await A.conn.Publish(`${P}.patx.ev`, [`${P}.patx.ev`], {}, { acknowledge: true })).OnPublished();
    await (await A.conn.Publish(`${P}.pa.x.ev`, ['miss'], {}, { acknowledge: true })).OnPublished();
    const take = async (q, n, what) => { const out = []; for (let i = 0; i < n; i++) out.push(await q.next(what)); return out; };
    const e = await take(exact, 1, 'exact event');
    const p = await take(prefix, 4, 'prefix events');
    const w = await take(wildcard, 2, 'wildcard events');
    checkEqual(e.map((x) => x.args[0]), [`${P}.pat.a.ev`], 'exact subscription got its topic only');
    checkEqual(p.map((x) => [x.args[0], x.details.topic]), [`${P}.pat.a.ev`, `${P}.pat.b.other`, `${P}.pat.c.ev`, `${P}.patx.ev`].map((t) => [t, t]),
      'prefix subscription: all four (string prefix), with details.topic');
    checkEqual(w.map((x) => [x.args[0], x.details.topic]), [`${P}.pat.a.ev`, `${P}.pat.c.ev`].map((t) => [t, t]),
      'wildcard subscription: the two .ev topics, with details.topic');
    await sleep(100);
    check(exact.pending + prefix.pending + wildcard.pending === 0, 'no further events (com...pa.x.ev matched nothing)');
    ok('exact + prefix + wildcard on one publication, details.topic for pattern matches');
    for (const s of subs) await s.Unsubscribe();
  });

  await feature('rpc_options', async (ok) => {
    const seen = [];
    await B.conn.Register(`${P}.who`, async (args, kwArgs, details) => ({ args: [details.caller ?? null, details.caller_authrole ?? null] }));
    checkEqual((await A.conn.Call(`${P}.who`, [], {}, { disclose_me: true })[0]).args, [A.id, 'anonymous'],
      'disclose_me: callee sees the caller session');
    checkEqual((await A.conn.Call(`${P}.who`, [])[0]).args, [null, null], 'without disclose_me: no caller details');
    ok('disclose_me');
    await B.conn.Register(`${P}.pre`, async (args, kwArgs, details) => { seen.push(['prefix', details.procedure]); return { args: ['prefix'] }; },
      { match: 'prefix' });
    await B.conn.Register(`${P}..wild`, async (args, kwArgs, details) => { seen.push(['wildcard', details.procedure]); return { args: ['wildcard'] }; },
      { match: 'wildcard' });
    checkEqual((await A.conn.Call(`${P}.pre.x.y`)[0]).args, ['prefix'], 'prefix registration answers');
    checkEqual((await A.conn.Call(`${P}.some.wild`)[0]).args, ['wildcard'], 'wildcard registration answers');
    checkEqual(seen, [['prefix', `${P}.pre.x.y`], ['wildcard', `${P}.some.wild`]], 'details.procedure at the pattern callee');
    ok('prefix and wildcard registrations, details.procedure');
    for (const s of [B, C]) {
      await s.conn.Register(`${P}.shared`, async () => ({ args: [s.label] }), { invoke: 'roundrobin' });
    }
    const who = [];
    for (let i = 0; i < 4; i++) who.push((await A.conn.Call(`${P}.shared`)[0]).args[0]);
    checkEqual(who, ['B', 'C', 'B', 'C'], 'roundrobin shared registration alternates');
    ok('shared registration (roundrobin)');
  });

  if (binary) await feature('binary_payloads', async (ok) => {
    const blob = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    await B.conn.Register(`${P}.echo`, async (args, kwArgs) => ({ args, kwArgs }));
    const r = await A.conn.Call(`${P}.echo`, [blob, 'text'], { blob, nested: [blob] })[0];
    check(Buffer.isBuffer(r.args[0]) && r.args[0].equals(blob), 'bytes in args round trip', r.args[0]);
    check(Buffer.isBuffer(r.kwArgs.blob) && r.kwArgs.blob.equals(blob), 'bytes in kwargs round trip', r.kwArgs);
    check(Buffer.isBuffer(r.kwArgs.nested[0]) && r.kwArgs.nested[0].equals(blob), 'nested bytes round trip', r.kwArgs);
    checkEqual(r.args[1], 'text', 'strings stay strings');
    ok('bytes in args/kwargs through a call');
    const q = queue();
    const sub = await C.conn.Subscribe(`${P}.bin`, q.handler);
    await (await A.conn.Publish(`${P}.bin`, [blob], { blob }, { acknowledge: true })).OnPublished();
    const ev = await q.next('binary event');
    check(Buffer.isBuffer(ev.args[0]) && ev.args[0].equals(blob) && ev.kwArgs.blob.equals(blob), 'bytes in an event', ev);
    ok('bytes in args/kwargs through an event');
    await sub.Unsubscribe();
  });

  await feature('meta_api', async (ok) => {
    const count = (await A.conn.Call('wamp.session.count')[0]).args[0];
    check(Number.isInteger(count) && count >= 3, 'wamp.session.count counts the three sessions', count);
    const info = (await A.conn.Call('wamp.session.get', [B.id])[0]).args[0];
    checkEqual([info.session, info.authrole], [B.id, 'anonymous'], 'wamp.session.get of B');
    checkEqual(info.transport && info.transport.serializer, serializerName, 'B\'s serializer in wamp.session.get');
    const regs = (await A.conn.Call('wamp.registration.lookup', [`${P}.add`])[0]).args[0];
    checkEqual(regs, addReg.ID(), 'wamp.registration.lookup finds B\'s registration');
    ok('wamp.session.count, wamp.session.get, wamp.registration.lookup');
  });

  let py = null;
  if (opts.sync) {
    // procedures for the Python side: the error one (args/kwargs), the progressive one and the echo are registered above
    say({ stage: 'ready', procedures: { fail: `${P}.fail`, count: `${P}.count`, echo: binary ? `${P}.echo` : null },
      session_ids: results.session_ids });
    const rl = createInterface({ input: process.stdin });
    py = await withTimeout(new Promise((r) => rl.once('line', (line) => { rl.close(); r(line); })), 15000, 'the Python side');
  }

  await feature('unsubscribe_unregister', async (ok) => {
    await ackSub.Unsubscribe();
    await withTimeout(ackSub.OnUnsubscribed(), 3000, 'OnUnsubscribed');
    const marker = queue();
    const sub = await A.conn.Subscribe(`${P}.marker`, marker.handler);
    await (await B.conn.Publish(`${P}.topic`, ['after unsubscribe'], {}, { acknowledge: true })).OnPublished();
    await (await B.conn.Publish(`${P}.marker`, ['marker'], {}, { acknowledge: true })).OnPublished();
    await marker.next('marker event');
    checkEqual(ackEvents.pending, 0, 'no event after unsubscribe');
    await sub.Unsubscribe();
    ok('unsubscribe: no more events');
    await addReg.Unregister();
    const e = await callRejects(A.conn.Call(`${P}.add`, [1, 2])[0], 'call after unregister');
    checkEqual(e, 'wamp.error.no_such_procedure', 'after unregister');
    ok('unregister: no_such_procedure afterwards');
  });

  await feature('leave', async (ok) => {
    const leaves = queue();
    await A.conn.Subscribe('wamp.session.on_leave', leaves.handler);
    const closed = await withTimeout(C.conn.Close(), 3000, 'C to close');
    checkEqual([closed.wasClean, closed.code], [true, 1000], 'C\'s connection closed cleanly');
    const ev = await leaves.next('wamp.session.on_leave for C');
    checkEqual(ev.args[0], C.id, 'the router saw C leave');
    for (const s of [A, B]) {
      const c = await withTimeout(s.conn.Close(), 3000, `${s.label} to close`);
      checkEqual([c.wasClean, c.code], [true, 1000], `${s.label}'s connection closed cleanly`);
    }
    ok('GOODBYE answered, connection closed cleanly, router removed the session');
  });
  results.python = py;
}

main().catch((e) => { results.error = errText(e); }).finally(() => {
  clearTimeout(overall);
  results.ok = !results.error && Object.values(results.features).every((f) => f.ok);
  process.stdout.write(JSON.stringify(results, jsonSafe) + '\n', () => process.exit(results.ok ? 0 : 1));
});
