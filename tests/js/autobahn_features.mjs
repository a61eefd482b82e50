// AutobahnJS <-> Cloverleaf: the advanced features AutobahnJS has, one run per serializer/transport.
//
// Usage:
//   node autobahn_features.mjs <realm> --ws ws://host:port/path --rs host:port
//        [--runs json/ws,msgpack/ws,cbor/ws,json/rs] [--py-echo URI] [--py-cancel URI] [--timeout SECONDS]
//
// Every run opens its own AutobahnJS sessions and checks, from the JS side: publish options (eligible, exclude,
// their authid/authrole variants, exclude_me), prefix/wildcard subscriptions, RPC options (disclose_me,
// pattern registrations, shared registrations), call timeout, call cancel, slow calls answered out of order,
// binary payloads (with a Python echo peer when --py-echo is given), automatic reconnect through a TCP relay
// this script runs itself, and the meta API. Checks are independent: a failed one is recorded with its error
// and the others still run.
//
// RawSocket: AutobahnJS's Node RawSocket transport (lib/transport/rawsocket.js) speaks JSON only; the "rs"
// runs use it, and a msgpack/rs or cbor/rs run only shows that the serializer option is ignored there.
//
// Output: one JSON line on stdout, {"ok": bool, "runs": [{serializer, transport, checks: [...passed],
// failures: {check: error}, observed: {...}}]}; exit code 0 when every check passed, 1 otherwise, 2 on bad
// usage, 3 when the overall timeout fires.

import net from 'node:net';
import { createRequire } from 'node:module';
import { isDeepStrictEqual, parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const autobahn = require('autobahn');

const results = { ok: false, node: process.version, autobahn: autobahn.version, runs: [] };
let finished = false;

function jsonSafe(key, value) {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('hex') };
  if (value && value.type === 'Buffer' && Array.isArray(value.data) && this && !(this instanceof Array)) {
    // Buffer.toJSON already ran: keep it distinguishable from a plain object that looks the same
    return { $bytes: Buffer.from(value.data).toString('hex') };
  }
  return value;
}

function describe(value) {
  return JSON.stringify(value, jsonSafe);
}

function emit(obj, code) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(obj, jsonSafe) + '\n', () => process.exit(code));
}

class CheckError extends Error {}

function check(condition, what, ...got) {
  if (!condition) throw new CheckError(got.length ? `${what}; got ${describe(got[0]) ?? 'undefined'}` : what);
}

function checkEqual(got, expected, what) {
  check(isDeepStrictEqual(got, expected), `${what}: expected ${describe(expected)}`, got);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckError(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function errorText(e) {
  if (e instanceof autobahn.Error) return `WAMP error ${e.error} args=${describe(e.args)} kwargs=${describe(e.kwargs)}`;
  if (e instanceof Error) return e.message;
  return describe(e);
}

// The WAMP error a promise rejects with (fails the check when it resolves instead).
async function wampError(promise, ms, what) {
  try {
    const r = await withTimeout(promise, ms, what);
    throw new CheckError(`${what} should fail; got result ${describe(r)}`);
  } catch (e) {
    if (e instanceof CheckError) throw e;
    check(e instanceof autobahn.Error, `${what} rejects with autobahn.Error`, errorText(e));
    return e;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function makeSerializer(name) {
  const s = autobahn.serializer;
  if (name === 'json') return new s.JSONSerializer();
  if (name === 'msgpack') return new s.MsgpackSerializer();
  if (name === 'cbor') return new s.CBORSerializer();
  throw new CheckError(`unknown serializer ${name}`);
}

// A connection's options for one run; `target` overrides the router address (the reconnect relay).
function connectionOptions(cfg, target = {}) {
  const common = {
    realm: cfg.realm,
    max_retries: 0,
    retry_if_unreachable: false,
    on_user_error: (e, msg) => {
      if (!(e instanceof autobahn.Error)) process.stderr.write(`user code error: ${msg} ${errorText(e)}\n`);
    },
    on_internal_error: (e, msg) => process.stderr.write(`AutobahnJS internal error: ${msg ?? ''} ${errorText(e)}\n`),
  };
  if (cfg.transport === 'rs') {
    return { ...common, transports: [{ type: 'rawsocket', host: cfg.rsHost, port: target.port ?? cfg.rsPort,
      serializers: [makeSerializer(cfg.serializer)] }] };
  }
  const url = target.port ? cfg.wsUrl.replace(/:\d+\//, `:${target.port}/`) : cfg.wsUrl;
  return { ...common, url, serializers: [makeSerializer(cfg.serializer)] };
}

// Opens one connection; resolves with {connection, session, details, closed, label} once joined.
// `closed` resolves with {reason, details} when the connection closes for good.
function openSession(cfg, label, extra = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    let joined = false;
    let closedResolve;
    const closed = new Promise((r) => { closedResolve = r; });
    const connection = new autobahn.Connection({ ...connectionOptions(cfg), ...extra });
    connection.onopen = (session, details) => {
      joined = true;
      resolve({ connection, session, details, closed, label });
    };
    connection.onclose = (reason, details) => {
      closedResolve({ reason, details });
      if (!joined) reject(new CheckError(`${label} session did not join: ${reason} ${describe(details)}`));
      return true;
    };
    connection.open();
  }), 5000, `${label} to join`);
}

async function closeSession(s) {
  if (!s || !s.connection.isOpen) return;
  try {
    s.connection.close();
  } catch {
    return;
  }
  await withTimeout(s.closed, 3000, `${s.label} to close`).catch(() => {});
}

// Events delivered to one handler, with a way to wait for one whose args[0] is a given marker.
function collector() {
  const items = [];
  let waiters = [];
  const c = {
    items,
    handler(args, kwargs, details) {
      items.push({ args, kwargs, details });
      waiters = waiters.filter((w) => !w());
    },
    until(predicate, ms, what) {
      return withTimeout(new Promise((resolve) => {
        const w = () => { if (items.some(predicate)) { resolve(); return true; } return false; };
        if (!w()) waiters.push(w);
      }), ms, what);
    },
    labels() { return items.map((e) => e.args[0]); },
  };
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// The checks. Each gets the run's context {cfg, a, b, c, run} (three joined sessions) and throws on failure.

async function pubsubOptions(ctx) {
  const { a, b, c, run } = ctx;
  const topic = `com.example.features.${ctx.tag}.options`;
  const got = { a: collector(), b: collector(), c: collector() };
  await Promise.all([a, b, c].map((s, i) => s.session.subscribe(topic, got['abc'[i]].handler)));
  const ids = { a: a.session.id, b: b.session.id, c: c.session.id };
  const authids = { a: a.details.authid, b: b.details.authid, c: c.details.authid };
  const authroles = { a: a.details.authrole, b: b.details.authrole, c: c.details.authrole };
  run.observed.authids = authids;
  run.observed.authroles = authroles;
  check(new Set(Object.values(authids)).size === 3, 'the three anonymous sessions have distinct authids', authids);
  check(new Set(Object.values(authroles)).size === 1, 'the three anonymous sessions share one authrole', authroles);
  const role = authroles.b;
  const cases = [
    // label, options, who gets it
    ['default', {}, ['b', 'c']],
    ['exclude_me_false', { exclude_me: false }, ['a', 'b', 'c']],
    ['exclude_me_true', { exclude_me: true }, ['b', 'c']],
    ['eligible_b', { eligible: [ids.b] }, ['b']],
    ['eligible_a_c_me', { eligible: [ids.a, ids.c], exclude_me: false }, ['a', 'c']],
    ['exclude_b', { exclude: [ids.b] }, ['c']],
    ['eligible_bc_exclude_c', { eligible: [ids.b, ids.c], exclude: [ids.c] }, ['b']],
    ['eligible_authid_c', { eligible_authid: [authids.c] }, ['c']],
    ['exclude_authid_c', { exclude_authid: [authids.c], exclude_me: false }, ['a', 'b']],
    ['eligible_authrole', { eligible_authrole: [role] }, ['b', 'c']],
    ['eligible_authrole_other', { eligible_authrole: ['no-such-role'] }, []],
    ['exclude_authrole', { exclude_authrole: [role], exclude_me: false }, []],
    ['exclude_authrole_other', { exclude_authrole: ['no-such-role'] }, ['b', 'c']],
  ];
  for (const [label, options] of cases) {
    const pub = await withTimeout(a.session.publish(topic, [label], { k: label }, { ...options, acknowledge: true }),
      3000, `PUBLISHED for ${label}`);
    check(pub && Number.isSafeInteger(pub.id), `acknowledged publish ${label} yields a publication id`, pub);
  }
  // barrier: every session sees the last event only after every earlier one (one publisher, in order)
  await a.session.publish(topic, ['barrier'], {}, { exclude_me: false, acknowledge: true });
  await Promise.all(['a', 'b', 'c'].map((k) => got[k].until((e) => e.args[0] === 'barrier', 3000, `barrier at ${k}`)));
  for (const k of ['a', 'b', 'c']) {
    const expected = cases.filter(([, , who]) => who.includes(k)).map(([label]) => label).concat(['barrier']);
    checkEqual(got[k].labels(), expected, `events seen by session ${k}`);
  }
  const fromA = got.b.items[0].details;
  checkEqual(fromA.topic, topic, 'details.topic of an exact subscription');
  return { sessions: ids };
}

async function patternSubscriptions(ctx) {
  const { a, b, c } = ctx;
  const base = `com.example.features.${ctx.tag}.pat`;
  const exact = collector();
  const prefix = collector();
  const wildcard = collector();
  const otherPrefix = collector();
  const subs = await Promise.all([
    b.session.subscribe(`${base}.a.t`, exact.handler),
    b.session.subscribe(base, prefix.handler, { match: 'prefix' }),
    b.session.subscribe(`${base}..t`, wildcard.handler, { match: 'wildcard' }),
    c.session.subscribe(`${base}.a`, otherPrefix.handler, { match: 'prefix' }),
  ]);
  check(new Set(subs.map((s) => s.id)).size === 4, 'four distinct subscription ids', subs.map((s) => s.id));
  const publish = (topic, label) => a.session.publish(topic, [label], {}, { acknowledge: true });
  await publish(`${base}.a.t`, 'all four');
  await publish(`${base}.b.t`, 'prefix+wildcard');
  await publish(`${base}.a.u`, 'two prefixes');
  await publish(`${base}.b.u.v`, 'outer prefix');
  // prefix matching compares strings, not URI components (spec: "emergency" matches "emergency-low")
  await publish(`${base}x.a.t`, 'string prefix');
  await publish(`${base}.a.barrier`, 'barrier');
  await Promise.all([prefix, otherPrefix].map((h, i) => h.until((e) => e.args[0] === 'barrier', 3000, `barrier ${i}`)));
  checkEqual(exact.items.map((e) => [e.args[0], e.details.topic]), [['all four', `${base}.a.t`]],
    'exact subscription: events and details.topic');
  checkEqual(wildcard.items.map((e) => [e.args[0], e.details.topic]),
    [['all four', `${base}.a.t`], ['prefix+wildcard', `${base}.b.t`]], 'wildcard subscription: events and topics');
  const prefixSeen = [['all four', `${base}.a.t`], ['prefix+wildcard', `${base}.b.t`], ['two prefixes', `${base}.a.u`],
    ['outer prefix', `${base}.b.u.v`], ['string prefix', `${base}x.a.t`]];
  checkEqual(prefix.items.map((e) => [e.args[0], e.details.topic]), [...prefixSeen, ['barrier', `${base}.a.barrier`]],
    'prefix subscription: events and topics');
  checkEqual(otherPrefix.items.map((e) => [e.args[0], e.details.topic]),
    [['all four', `${base}.a.t`], ['two prefixes', `${base}.a.u`], ['barrier', `${base}.a.barrier`]],
    'second session prefix subscription: events and topics');
  // the same publication reached every subscription under one publication id
  const pubIds = new Set([exact, prefix, wildcard, otherPrefix].map((h) => h.items[0].details.publication));
  check(pubIds.size === 1, 'one publication id for the event all four subscriptions got', [...pubIds]);
  await Promise.all(subs.map((s) => s.unsubscribe()));
}

async function rpcOptions(ctx) {
  const { a, b, c } = ctx;
  const p = `com.example.features.${ctx.tag}.rpc`;
  const regs = [];
  // caller disclosure
  regs.push(await b.session.register(`${p}.who`, (args, kwargs, details) => new autobahn.Result([], {
    caller: details.caller ?? null, caller_authid: details.caller_authid ?? null,
    caller_authrole: details.caller_authrole ?? null, procedure: details.procedure })));
  const disclosed = await a.session.call(`${p}.who`, [], {}, { disclose_me: true });
  checkEqual(disclosed.kwargs, { caller: a.session.id, caller_authid: a.details.authid,
    caller_authrole: a.details.authrole, procedure: `${p}.who` }, 'invocation details with disclose_me');
  const anonymous = await a.session.call(`${p}.who`, [], {});
  checkEqual(anonymous.kwargs, { caller: null, caller_authid: null, caller_authrole: null, procedure: `${p}.who` },
    'invocation details without disclose_me');
  a.session.caller_disclose_me = true; // AutobahnJS's session-wide switch: sets disclose_me on every call
  const viaSwitch = await a.session.call(`${p}.who`, [], {});
  a.session.caller_disclose_me = false;
  checkEqual(viaSwitch.kwargs.caller, a.session.id, 'caller disclosed by session.caller_disclose_me');

  // pattern registrations: exact > prefix > wildcard, details.procedure is the called URI
  const answer = (kind) => (args, kwargs, details) => [kind, details.procedure];
  regs.push(await b.session.register(`${p}.pat.x.end`, answer('exact')));
  regs.push(await b.session.register(`${p}.pat`, answer('prefix'), { match: 'prefix' }));
  regs.push(await c.session.register(`${p}.pat..end`, answer('wildcard'), { match: 'wildcard' }));
  regs.push(await c.session.register(`${p}.wild..end`, answer('wildcard'), { match: 'wildcard' }));
  const calls = [
    [`${p}.pat.x.end`, ['exact', `${p}.pat.x.end`]],
    [`${p}.pat.y.end`, ['prefix', `${p}.pat.y.end`]],
    [`${p}.pat.y.z.other`, ['prefix', `${p}.pat.y.z.other`]],
    [`${p}.wild.q.end`, ['wildcard', `${p}.wild.q.end`]],
  ];
  for (const [uri, expected] of calls) {
    const r = await withTimeout(a.session.call(uri, []), 3000, `call ${uri}`);
    checkEqual(r instanceof autobahn.Result ? r.args : r, expected, `callee and details.procedure for ${uri}`);
  }
  const miss = await wampError(a.session.call(`${p}.wild.q.r.end`, []), 3000, 'a call no pattern matches');
  checkEqual(miss.error, 'wamp.error.no_such_procedure', 'error for a URI no pattern matches');

  // shared registrations
  const who = (name) => () => name;
  for (const policy of ['roundrobin', 'first', 'last']) {
    const uri = `${p}.shared.${policy}`;
    regs.push(await b.session.register(uri, who('b'), { invoke: policy }));
    regs.push(await c.session.register(uri, who('c'), { invoke: policy }));
    regs.push(await a.session.register(uri, who('a'), { invoke: policy }));
    const answers = [];
    for (let i = 0; i < 6; i += 1) answers.push(await withTimeout(a.session.call(uri, []), 3000, `call ${uri}`));
    if (policy === 'roundrobin') checkEqual(answers, ['b', 'c', 'a', 'b', 'c', 'a'], 'roundrobin callee order');
    if (policy === 'first') checkEqual(answers, ['b', 'b', 'b', 'b', 'b', 'b'], 'invoke first: the first callee');
    if (policy === 'last') checkEqual(answers, ['a', 'a', 'a', 'a', 'a', 'a'], 'invoke last: the last callee');
  }
  const clash = await wampError(c.session.register(`${p}.shared.first`, who('c2'), { invoke: 'roundrobin' }), 3000,
    'joining a shared registration with another policy');
  checkEqual(clash.error, 'wamp.error.procedure_exists_with_different_invocation_policy',
    'error for a policy mismatch');
  const single = await wampError(c.session.register(`${p}.who`, who('c')), 3000, 'registering a taken URI');
  checkEqual(single.error, 'wamp.error.procedure_already_exists', 'error for a second single registration');
  for (const r of regs) if (r.active) await r.unregister();
}

// A JS callee that answers after args[0] ms with [args[1]]; `done` collects the labels it answered.
async function registerDelayed(session, uri) {
  const answered = [];
  const reg = await session.register(uri, async (args) => {
    await sleep(args[0]);
    answered.push(args[1]);
    return args[1];
  });
  return { reg, answered };
}

async function slowCalls(ctx) {
  const { a, b, c } = ctx;
  const uri = `com.example.features.${ctx.tag}.delayed`;
  const { reg, answered } = await registerDelayed(b.session, uri);
  const order = [];
  const issue = (s, delay, label) => s.session.call(uri, [delay, label]).then((r) => { order.push(label); return r; });
  const pending = [issue(a, 400, 'a-400'), issue(c, 250, 'c-250'), issue(a, 50, 'a-50'), issue(c, 0, 'c-0'),
    issue(a, 150, 'a-150')];
  const got = await withTimeout(Promise.all(pending), 5000, 'five calls in flight');
  checkEqual(got, ['a-400', 'c-250', 'a-50', 'c-0', 'a-150'], 'each caller gets its own result');
  checkEqual(order, ['c-0', 'a-50', 'a-150', 'c-250', 'a-400'], 'results arrive in the order the callee answered');
  checkEqual(answered, order, 'callee answer order');
  await reg.unregister();
}

async function callTimeout(ctx) {
  const { a, b, run } = ctx;
  const uri = `com.example.features.${ctx.tag}.timeout`;
  const { reg, answered } = await registerDelayed(b.session, uri);
  const started = Date.now();
  const e = await wampError(a.session.call(uri, [500, 'late'], {}, { timeout: 100 }), 3000, 'a call past its timeout');
  const elapsed = Date.now() - started;
  run.observed.timeout_error_after_ms = elapsed;
  checkEqual(e.error, 'wamp.error.timeout', 'error URI of a timed-out call');
  check(elapsed < 450, 'the timeout error comes before the callee answers', elapsed);
  // the callee (no call_canceling in AutobahnJS) still answers: the router drops that late YIELD
  await withTimeout((async () => { while (!answered.includes('late')) await sleep(20); })(), 3000, 'the late answer');
  checkEqual(await withTimeout(a.session.call(uri, [0, 'next'], {}, { timeout: 2000 }), 3000, 'next call'), 'next',
    'a call within its timeout, after the late answer was dropped');
  check(b.session.isOpen && a.session.isOpen, 'both sessions still open after the late answer');
  await reg.unregister();
}

async function callCancel(ctx) {
  const { a, b, cfg, run } = ctx;
  const uri = `com.example.features.${ctx.tag}.cancel`;
  const { reg, answered } = await registerDelayed(b.session, uri);
  // mode "kill": AutobahnJS keeps the call pending until the router answers it; the AutobahnJS callee
  // announces no call_canceling, so the router cancels at once (skip) and drops the callee's late answer
  const call = a.session.call(uri, [400, 'canceled-late']);
  await sleep(50);
  call.cancel({ mode: 'kill' });
  const e = await wampError(call, 3000, 'a canceled call');
  checkEqual(e.error, 'wamp.error.canceled', 'error URI of a canceled call (kill mode, JS callee)');
  await withTimeout((async () => { while (!answered.includes('canceled-late')) await sleep(20); })(), 3000,
    'the callee to finish');
  checkEqual(await withTimeout(a.session.call(uri, [0, 'after']), 3000, 'call after cancel'), 'after',
    'the callee serves calls after its canceled invocation');
  await reg.unregister();

  if (cfg.pyCancel) {
    // a callee that supports canceling (Autobahn|Python): it gets INTERRUPT and answers with an error
    const pyCall = a.session.call(cfg.pyCancel, [ctx.tag]);
    await sleep(200);
    pyCall.cancel({ mode: 'kill' });
    const pyErr = await wampError(pyCall, 3000, 'a canceled call to a Python callee');
    run.observed.python_cancel_error = pyErr.error;
    // mode "kill": the router waits for the interrupted callee's answer and passes it on
    checkEqual([pyErr.error, pyErr.args], ['com.example.py.interrupted', [ctx.tag]],
      'a canceled call (kill mode, Python callee) ends with the callee\'s error');
  }
}

// What AutobahnJS does with cancel() without a mode (only observed; the report says why it is not a check).
async function observeDefaultCancel(ctx) {
  const { b, cfg, run } = ctx;
  const uri = `com.example.features.${ctx.tag}.cancel_default`;
  const { reg } = await registerDelayed(b.session, uri);
  const e = await openSession(cfg, 'default-cancel caller');
  const call = e.session.call(uri, [300, 'x']);
  await sleep(50);
  call.cancel();
  let local;
  try { await call; } catch (err) { local = errorText(err); }
  const closed = await Promise.race([e.closed, sleep(500).then(() => null)]);
  run.observed.cancel_without_mode = { local_rejection: local, connection_closed_by_autobahnjs: closed !== null,
    close: closed };
  await closeSession(e);
  await reg.unregister();
}

//: the bytes the Python echo procedure adds to its answer (kwarg py_bytes)
const PY_BYTES = Buffer.from([0, 1, 0xfe, 0xff]);

function bytesOf(value) {
  return value instanceof Uint8Array ? { bytes: Buffer.from(value).toString('hex'), type: value.constructor.name }
    : { other: describe(value) };
}

async function binaryPayloads(ctx) {
  const { a, b, cfg, run } = ctx;
  const uri = `com.example.features.${ctx.tag}.bin`;
  const buf = Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
  const u8 = new Uint8Array([0, 0, 9, 255]);
  const seen = [];
  const reg = await b.session.register(uri, (args, kwargs) => {
    seen.push({ args, kwargs });
    return new autobahn.Result(args, kwargs);
  });
  const topic = `com.example.features.${ctx.tag}.bin.topic`;
  const events = collector();
  const sub = await b.session.subscribe(topic, events.handler);
  try {
    if (cfg.serializer === 'json') {
      // AutobahnJS's JSONSerializer is JSON.stringify: a Buffer goes out as {"type":"Buffer","data":[...]},
      // not as the WAMP "\0"+base64 string; a Uint8Array as {"0":..,"1":..}. Both arrive as plain objects.
      const r = await withTimeout(a.session.call(uri, [buf], { blob: buf }), 3000, 'echo of a Buffer in JSON');
      const asObject = { type: 'Buffer', data: [...buf] };
      checkEqual(seen[0].args[0], asObject, 'JSON: a Buffer as the JS callee receives it');
      checkEqual(r.kwargs.blob, asObject, 'JSON: a Buffer echoed back');
      run.observed.json_buffer = seen[0].args[0];
      if (cfg.pyEcho) {
        const py = await withTimeout(a.session.call(cfg.pyEcho, [buf], { blob: buf }), 3000, 'Python echo');
        run.observed.python_echo_json = { args: py.args, kwargs: py.kwargs };
        checkEqual([py.kwargs.types, py.kwargs.kwtypes], [['dict'], { blob: 'dict' }],
          'JSON: Python receives the Buffer as a map, not bytes');
        checkEqual(py.kwargs.blob, asObject, 'JSON: the map echoed by Python');
        // bytes from Python arrive as the WAMP JSON convention, which AutobahnJS leaves as a string
        checkEqual(py.kwargs.py_bytes, `\u0000${PY_BYTES.toString('base64')}`,
          'JSON: bytes from Python as AutobahnJS sees them ("\\0" + base64 string)');
      }
      return;
    }
    // msgpack / cbor: real binary values
    const r = await withTimeout(a.session.call(uri, [buf, u8, 'text'], { blob: buf, u8, nested: { list: [buf, 1] } }),
      3000, 'echo of binary args and kwargs');
    const inCallee = seen[0];
    check(Buffer.isBuffer(inCallee.args[0]) || inCallee.args[0] instanceof Uint8Array,
      'the callee receives a Buffer as binary', bytesOf(inCallee.args[0]));
    checkEqual(Buffer.from(inCallee.args[0]).toString('hex'), buf.toString('hex'), 'Buffer arg bytes at the callee');
    run.observed.uint8array_at_callee = bytesOf(inCallee.args[1]);
    checkEqual(bytesOf(inCallee.args[1]).bytes, Buffer.from(u8).toString('hex'), 'Uint8Array arg bytes at the callee');
    checkEqual(bytesOf(inCallee.kwargs.blob).bytes, buf.toString('hex'), 'Buffer kwarg bytes at the callee');
    checkEqual(bytesOf(inCallee.kwargs.u8).bytes, Buffer.from(u8).toString('hex'), 'Uint8Array kwarg bytes at the callee');
    checkEqual(bytesOf(inCallee.kwargs.nested.list[0]).bytes, buf.toString('hex'), 'nested Buffer bytes at the callee');
    checkEqual(bytesOf(r.args[0]).bytes, buf.toString('hex'), 'Buffer arg echoed to the caller');
    checkEqual(bytesOf(r.args[1]).bytes, Buffer.from(u8).toString('hex'), 'Uint8Array arg echoed to the caller');
    checkEqual(r.args[2], 'text', 'a text arg beside binary ones stays text');
    checkEqual(bytesOf(r.kwargs.nested.list[0]).bytes, buf.toString('hex'), 'nested Buffer echoed to the caller');
    await a.session.publish(topic, [buf], { u8 }, { acknowledge: true });
    await events.until(() => true, 3000, 'the binary event');
    const ev = events.items[0];
    checkEqual([bytesOf(ev.args[0]).bytes, bytesOf(ev.kwargs.u8).bytes], [buf.toString('hex'),
      Buffer.from(u8).toString('hex')], 'binary event payload');
    if (cfg.pyEcho) {
      const py = await withTimeout(a.session.call(cfg.pyEcho, [buf, u8], { blob: buf }), 3000, 'Python echo');
      run.observed.python_echo = { args: py.args, kwargs: py.kwargs };
      checkEqual(py.kwargs.types, ['bytes', 'bytes'], 'Python sees both binary args as bytes');
      checkEqual(py.kwargs.kwtypes, { blob: 'bytes' }, 'Python sees the binary kwarg as bytes');
      checkEqual([bytesOf(py.args[0]).bytes, bytesOf(py.args[1]).bytes, bytesOf(py.kwargs.blob).bytes],
        [buf.toString('hex'), Buffer.from(u8).toString('hex'), buf.toString('hex')], 'bytes echoed by Python');
      checkEqual(bytesOf(py.kwargs.py_bytes).bytes, PY_BYTES.toString('hex'), 'bytes from Python arrive as binary');
    }
  } finally {
    await reg.unregister().catch(() => {});
    await sub.unsubscribe().catch(() => {});
  }
}

// A TCP relay in front of the router whose connections can be cut (the network failing, not a clean close).
async function startRelay(host, port) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    // RST, not FIN: AutobahnJS's RawSocket opens its socket with allowHalfOpen and has no 'end' handler, so
    // after a FIN from the router side it stays half-open and never notices (nor reconnects)
    cut() { for (const s of sockets) s.resetAndDestroy(); sockets.clear(); },
    close() { this.cut(); server.close(); },
  };
}

async function reconnect(ctx) {
  const { a, cfg, run } = ctx;
  const routerPort = cfg.transport === 'rs' ? cfg.rsPort : Number(new URL(cfg.wsUrl).port);
  const relay = await startRelay(cfg.transport === 'rs' ? cfg.rsHost : '127.0.0.1', routerPort);
  const uri = `com.example.features.${ctx.tag}.reconnect.echo`;
  const topic = `com.example.features.${ctx.tag}.reconnect.topic`;
  const opens = [];
  const closes = [];
  const events = collector();
  let readyResolve;
  let ready = new Promise((r) => { readyResolve = r; });
  const connection = new autobahn.Connection({
    ...connectionOptions(cfg, { port: relay.port }),
    max_retries: 5,
    initial_retry_delay: 0.1,
    retry_delay_growth: 1.5,
  });
  // as an application does it: (re-)register and (re-)subscribe in onopen
  connection.onopen = async (session) => {
    opens.push(session.id);
    await session.register(uri, (args) => ['echo', session.id, ...args]);
    await session.subscribe(topic, events.handler);
    readyResolve(session.id);
  };
  connection.onclose = (reason, details) => { closes.push({ reason, will_retry: details.will_retry }); return false; };
  try {
    connection.open();
    const first = await withTimeout(ready, 5000, 'the first session via the relay');
    checkEqual(await a.session.call(uri, [1]), ['echo', first, 1], 'call before the cut');
    ready = new Promise((r) => { readyResolve = r; });
    relay.cut();
    const second = await withTimeout(ready, 5000, 'AutobahnJS to reconnect');
    check(second !== first, 'the reconnected session is a new session', [first, second]);
    checkEqual(closes.length, 1, 'one close before the reconnect', closes);
    check(closes[0].will_retry === true, 'AutobahnJS announced it will retry', closes[0]);
    run.observed.reconnect_close = closes[0];
    checkEqual(await withTimeout(a.session.call(uri, [2]), 3000, 'call after the reconnect'), ['echo', second, 2],
      'the re-registered procedure serves calls');
    await a.session.publish(topic, ['after reconnect'], {}, { acknowledge: true });
    await events.until((e) => e.args[0] === 'after reconnect', 3000, 'event on the renewed subscription');
    checkEqual(events.labels(), ['after reconnect'], 'events on the renewed subscription');
  } finally {
    try { connection.close(); } catch { /* already closed */ }
    await sleep(20);
    relay.close();
  }
}

async function metaApi(ctx) {
  const { a, b, cfg, run } = ctx;
  const count = await a.session.call('wamp.session.count');
  check(Number.isSafeInteger(count) && count >= 3, 'wamp.session.count counts the run\'s sessions', count);
  const list = await a.session.call('wamp.session.list');
  check(Array.isArray(list) && list.includes(b.session.id), 'wamp.session.list has session b', list);
  const info = await a.session.call('wamp.session.get', [b.session.id]);
  checkEqual([info.session, info.authid, info.authrole], [b.session.id, b.details.authid, b.details.authrole],
    'wamp.session.get for session b');
  const uri = `com.example.features.${ctx.tag}.meta.proc`;
  const reg = await b.session.register(uri, () => 1);
  checkEqual(await a.session.call('wamp.registration.lookup', [uri]), reg.id, 'wamp.registration.lookup');
  checkEqual(await a.session.call('wamp.registration.list_callees', [reg.id]), [b.session.id],
    'wamp.registration.list_callees');
  await reg.unregister();

  const joins = collector();
  const leaves = collector();
  await a.session.subscribe('wamp.session.on_join', joins.handler);
  await a.session.subscribe('wamp.session.on_leave', leaves.handler);
  const e = await openSession(cfg, 'meta target', { max_retries: 3, initial_retry_delay: 0.1 });
  const eId = e.session.id; // AutobahnJS clears session.id once the connection closes
  await joins.until((ev) => ev.args[0]?.session === e.session.id, 3000, 'wamp.session.on_join for the new session');
  const joined = joins.items.find((ev) => ev.args[0].session === e.session.id).args[0];
  checkEqual([joined.authid, joined.authrole], [e.details.authid, e.details.authrole], 'on_join details');
  await a.session.call('wamp.session.kill', [e.session.id], { reason: 'com.example.kicked', message: 'bye' });
  const closed = await withTimeout(e.closed, 3000, 'the killed session to close');
  run.observed.killed_close = closed;
  checkEqual(closed.details.reason, 'com.example.kicked', 'GOODBYE reason AutobahnJS got for the kill');
  check(closed.details.will_retry === false, 'AutobahnJS does not reconnect after a GOODBYE', closed.details);
  await leaves.until((ev) => ev.args[0] === eId, 3000, 'wamp.session.on_leave for the killed session');
}

// A msgpack/cbor serializer handed to the RawSocket transport: observe which serializer is really used.
async function rawsocketSerializer(ctx) {
  const { cfg, run } = ctx;
  const s = await openSession(cfg, `${cfg.serializer} over rawsocket`);
  run.observed.protocol = s.connection.transport.info.protocol;
  run.observed.serializer_option = cfg.serializer;
  await closeSession(s);
}

const CHECKS = {
  pubsub_options: pubsubOptions,
  pattern_subscriptions: patternSubscriptions,
  rpc_options: rpcOptions,
  slow_calls: slowCalls,
  call_timeout: callTimeout,
  call_cancel: callCancel,
  binary_payloads: binaryPayloads,
  reconnect,
  meta_api: metaApi,
};

async function runOne(cfg) {
  const run = { serializer: cfg.serializer, transport: cfg.transport, checks: [], failures: {}, observed: {} };
  results.runs.push(run);
  const ctx = { cfg, run, tag: `${cfg.serializer}_${cfg.transport}` };
  if (cfg.transport === 'rs' && cfg.serializer !== 'json') {
    try {
      await rawsocketSerializer(ctx);
    } catch (e) {
      run.failures.rawsocket_serializer = errorText(e);
    }
    return run;
  }
  try {
    [ctx.a, ctx.b, ctx.c] = await Promise.all(['a', 'b', 'c'].map((l) => openSession(cfg, l)));
  } catch (e) {
    run.failures.sessions = errorText(e);
    return run;
  }
  run.observed.protocol = ctx.a.connection.transport.info.protocol;
  for (const [name, fn] of Object.entries(CHECKS)) {
    try {
      if (!ctx.a.session.isOpen || !ctx.b.session.isOpen || !ctx.c.session.isOpen) {
        throw new CheckError('a session of the run closed before this check');
      }
      await fn(ctx);
      run.checks.push(name);
    } catch (e) {
      run.failures[name] = errorText(e);
      process.stderr.write(`${ctx.tag}: ${name} FAILED: ${errorText(e)}\n`);
    }
  }
  try {
    await observeDefaultCancel(ctx);
  } catch (e) {
    run.observed.cancel_without_mode = { error: errorText(e) };
  }
  await Promise.all([ctx.a, ctx.b, ctx.c].map(closeSession));
  return run;
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        ws: { type: 'string' },
        rs: { type: 'string' },
        runs: { type: 'string', default: 'json/ws,msgpack/ws,cbor/ws,json/rs' },
        'py-echo': { type: 'string' },
        'py-cancel': { type: 'string' },
        timeout: { type: 'string', default: '30' },
      },
    });
  } catch (e) {
    return emit({ ...results, error: `bad arguments: ${e.message}` }, 2);
  }
  const [realm] = parsed.positionals;
  const { ws, rs } = parsed.values;
  const timeoutSeconds = Number(parsed.values.timeout);
  if (!realm || !ws || !rs || !/^wss?:\/\//.test(ws) || !/^[^:]+:\d+$/.test(rs) || !(timeoutSeconds > 0)) {
    return emit({ ...results, error: 'usage: node autobahn_features.mjs <realm> --ws URL --rs HOST:PORT '
      + '[--runs json/ws,...] [--py-echo URI] [--py-cancel URI] [--timeout SECONDS]' }, 2);
  }
  setTimeout(() => emit({ ...results, ok: false, error: `overall timeout of ${timeoutSeconds} s exceeded` }, 3),
    timeoutSeconds * 1000);
  const [rsHost, rsPort] = rs.split(':');
  for (const spec of parsed.values.runs.split(',').filter(Boolean)) {
    const [serializer, transport] = spec.split('/');
    await runOne({ realm, serializer, transport, wsUrl: ws, rsHost, rsPort: Number(rsPort),
      pyEcho: parsed.values['py-echo'], pyCancel: parsed.values['py-cancel'] });
  }
  results.ok = results.runs.every((r) => Object.keys(r.failures).length === 0);
  emit(results, results.ok ? 0 : 1);
}

process.on('unhandledRejection', (e) => emit({ ...results, ok: false, error: `unhandled rejection: ${errorText(e)}` }, 1));
process.on('uncaughtException', (e) => emit({ ...results, ok: false, error: `uncaught exception: ${errorText(e)}` }, 1));
main().catch((e) => emit({ ...results, ok: false, error: errorText(e) }, 1));
