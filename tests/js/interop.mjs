// AutobahnJS <-> Cloverleaf interoperability client.
//
// Usage:
//   node interop.mjs <router-url: ws://host:port/path or rs://host:port (RawSocket, JSON only)> <realm> [--serializers json,msgpack,cbor]
//                    [--py-procedure URI] [--py-topic URI] [--timeout SECONDS]
//
// For every serializer it opens TWO AutobahnJS sessions on the router and checks, from the JS side:
// register/call with args+kwargs, the no_such_procedure error, an application error raised by a JS callee,
// subscribe + publish(acknowledge) with args/kwargs, unsubscribe/unregister, and a clean GOODBYE of both
// sessions. With --py-procedure / --py-topic it also calls a procedure and publishes to a topic that a Python
// (Autobahn|Python) session owns; it only reports what came back there, the Python test asserts on it.
//
// Output: exactly one JSON line on stdout ({"ok": true, ...} or {"ok": false, "error": ...}); exit code 0 on
// success, 1 on a failed check, 2 on bad usage, 3 when the overall timeout fires. AutobahnJS's own logging
// goes to stderr (console.warn).
//
// WebSocket in Node: autobahn is pinned to 22.11.1 (see package.json). In Node it uses globalThis.WebSocket if
// there is one, else the `ws` package. Node 20 has no global WebSocket unless started with
// --experimental-websocket, so run without that flag and `ws` is used. (autobahn 26.x dropped `ws`, requires
// Node >= 22 and only works on Node 20 with --experimental-websocket; it also passes these checks, but is
// outside its declared engine range.) The "websocket" field of the output says which one was used.

import { createRequire } from 'node:module';
import { isDeepStrictEqual, parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const autobahn = require('autobahn');

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_TIMEOUT = 3;

let finished = false;
const results = { ok: false, node: process.version, autobahn: autobahn.version, websocket: websocketImpl(), runs: [] };
let stage = 'startup';

function websocketImpl() {
  if ('WebSocket' in globalThis) return 'global WebSocket (Node built-in)';
  return `ws@${require('ws/package.json').version}`;
}

function emit(obj, code) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(obj, jsonSafe) + '\n', () => process.exit(code));
}

function fail(message, code = EXIT_FAILED) {
  const text = `interop.mjs: FAILED at ${stage}: ${message}`;
  process.stderr.write(text + '\n');
  emit({ ...results, ok: false, stage, error: message }, code);
}

// Buffers / Uint8Arrays in JSON output as {"$bytes": "<hex>"} (Buffer.toJSON is applied before the replacer,
// so handle its {type: 'Buffer', data: [...]} form as well).
function jsonSafe(key, value) {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('hex') };
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) {
    return { $bytes: Buffer.from(value.data).toString('hex') };
  }
  return value;
}

function describe(value) {
  return JSON.stringify(value, jsonSafe);
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

function makeSerializer(name) {
  const s = autobahn.serializer;
  if (name === 'json') return new s.JSONSerializer();
  if (name === 'msgpack' && s.MsgpackSerializer) return new s.MsgpackSerializer();
  if (name === 'cbor' && s.CBORSerializer) return new s.CBORSerializer();
  throw new CheckError(`serializer ${name} is not available in this AutobahnJS install`);
}

// Opens one AutobahnJS connection; resolves with {connection, session, details, closed} once joined.
// `closed` resolves with {reason, details} when the connection closes (at any time later).
function openSession(url, realm, serializerName, label, es6Promises = true) {
  return new Promise((resolve, reject) => {
    let joined = false;
    let closedResolve;
    const closed = new Promise((r) => { closedResolve = r; });
    // rs://host:port: AutobahnJS's RawSocket transport for Node (JSON only, lib/transport/rawsocket.js)
    const rs = /^rs:\/\/([^:/]+):(\d+)\/?$/.exec(url);
    const transport = rs ? { transports: [{ type: 'rawsocket', host: rs[1], port: Number(rs[2]) }] } : { url };
    const connection = new autobahn.Connection({
      ...transport,
      realm,
      serializers: [makeSerializer(serializerName)],
      max_retries: 0,
      retry_if_unreachable: false,
      use_es6_promises: es6Promises, // without: when.js promises, the only kind that carry progress
      // autobahn.Error thrown by a procedure is the intended way to return a WAMP error: don't log those.
      on_user_error: (e, msg) => {
        if (!(e instanceof autobahn.Error)) process.stderr.write(`${label}: user code error: ${msg} ${errorText(e)}\n`);
      },
      on_internal_error: (e, msg) => process.stderr.write(`${label}: AutobahnJS internal error: ${msg} ${errorText(e)}\n`),
    });
    connection.onopen = (session, details) => {
      joined = true;
      resolve({ connection, session, details, closed, label });
    };
    connection.onclose = (reason, details) => {
      closedResolve({ reason, details });
      if (!joined) reject(new CheckError(`${label} session did not join: ${reason} ${describe(details)}`));
      return true; // never auto-reconnect
    };
    connection.open();
  });
}

async function leave(s) {
  s.connection.close();
  const { reason, details } = await withTimeout(s.closed, 5000, `${s.label} connection to close`);
  check(reason === 'closed', `${s.label} connection should close cleanly (reason "closed")`, { reason, details });
  checkEqual(details.reason, 'wamp.close.goodbye_and_out', `${s.label} GOODBYE reason from router`);
}

// Single-consumer queue of events delivered to a subscription handler.
function eventQueue() {
  const items = [];
  const waiters = [];
  return {
    handler(args, kwargs, details) {
      const item = { args, kwargs, details };
      if (waiters.length) waiters.shift()(item); else items.push(item);
    },
    next(ms, what) {
      if (items.length) return Promise.resolve(items.shift());
      return withTimeout(new Promise((r) => waiters.push(r)), ms, what);
    },
    get pending() { return items.length; },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function asResult(value) {
  if (value instanceof autobahn.Result) return { args: value.args, kwargs: value.kwargs };
  return { args: value === undefined || value === null ? [] : [value], kwargs: {} };
}

async function runSerializer(url, realm, name, opts) {
  const run = { serializer: name, checks: [] };
  results.runs.push(run);
  const passed = (what) => run.checks.push(what);
  const binary = name !== 'json';

  stage = `${name}: open sessions`;
  const [callee, caller] = await withTimeout(
    Promise.all([openSession(url, realm, name, 'callee'), openSession(url, realm, name, 'caller')]),
    5000, 'both sessions to join');
  run.protocol = callee.connection.transport.info.protocol;
  run.session_ids = [callee.session.id, caller.session.id];
  checkEqual(run.protocol, `wamp.2.${name}`, 'negotiated WebSocket subprotocol');
  check(Number.isSafeInteger(callee.session.id) && callee.session.id > 0, 'session id is a positive integer',
    callee.session.id);
  check(callee.session.id !== caller.session.id, 'the two sessions have different ids', run.session_ids);
  passed('join');

  // -- RPC ------------------------------------------------------------------------------------------------
  stage = `${name}: register + call`;
  const procedure = 'com.example.js.add2';
  const invocations = [];
  const registration = await callee.session.register(procedure, (args, kwargs, details) => {
    invocations.push({ args, kwargs, procedure: details.procedure });
    const sum = args[0] + args[1];
    if (Object.keys(kwargs).length) return new autobahn.Result([sum], { sum, echo: kwargs });
    return sum;
  });
  check(registration instanceof autobahn.Registration && Number.isSafeInteger(registration.id),
    'register() yields a Registration with an integer id', registration);

  const kwargs = { label: 'sum', nested: { list: [1, 'two', null, true, 1.5] }, unicode: 'Grüße ☘ 🍀' };
  const result = await withTimeout(caller.session.call(procedure, [2, 3], kwargs), 5000, 'call result');
  check(result instanceof autobahn.Result, 'call with kwargs yields an autobahn.Result', result);
  checkEqual(result.args, [5], 'call result args');
  checkEqual(result.kwargs, { sum: 5, echo: kwargs }, 'call result kwargs');
  checkEqual(invocations[0], { args: [2, 3], kwargs, procedure }, 'invocation seen by the JS callee');
  checkEqual(await caller.session.call(procedure, [40, 2]), 42, 'call with positional args only');
  passed('call_args_kwargs');

  stage = `${name}: call missing procedure`;
  try {
    const r = await withTimeout(caller.session.call('com.example.js.no_such_procedure', [1], { x: 1 }), 5000,
      'error for a missing procedure');
    check(false, 'call to a missing procedure should fail', r);
  } catch (e) {
    if (e instanceof CheckError) throw e;
    check(e instanceof autobahn.Error, 'call to a missing procedure rejects with autobahn.Error', errorText(e));
    checkEqual(e.error, 'wamp.error.no_such_procedure', 'error URI for a missing procedure');
  }
  passed('no_such_procedure');

  stage = `${name}: application error`;
  const failing = await callee.session.register('com.example.js.fail', (args) => {
    throw new autobahn.Error('com.example.error.js_failure', [args[0], 'is too big'], { limit: 10 });
  });
  try {
    const r = await withTimeout(caller.session.call('com.example.js.fail', [11]), 5000, 'application error');
    check(false, 'call to a failing procedure should fail', r);
  } catch (e) {
    if (e instanceof CheckError) throw e;
    check(e instanceof autobahn.Error, 'application error rejects with autobahn.Error', errorText(e));
    checkEqual({ error: e.error, args: e.args, kwargs: e.kwargs },
      { error: 'com.example.error.js_failure', args: [11, 'is too big'], kwargs: { limit: 10 } },
      'application error as seen by the caller');
  }
  await callee.session.unregister(failing);
  passed('application_error');

  // AutobahnJS callees announce progressive_call_results but not call_canceling; the router still
  // forwards receive_progress to them (docs/spec-notes.md), as AutobahnJS's own test_rpc_progress expects
  stage = `${name}: progressive call results from a JS callee`;
  const counting = await callee.session.register('com.example.js.count', (args, kwargs, details) => {
    if (typeof details.progress !== 'function') return 'no progress function';
    for (let i = 0; i < args[0]; i += 1) details.progress([i]);
    return 'done';
  });
  const progressCaller = await withTimeout(openSession(url, realm, name, 'progress caller', false), 5000,
    'a caller on when.js promises to join');
  const progress = [];
  const counted = progressCaller.session.call('com.example.js.count', [3], {}, { receive_progress: true });
  counted.then(null, null, (value) => progress.push(value)); // when.js: the third callback gets progress
  checkEqual(await withTimeout(counted, 5000, 'progressive call result'), 'done', 'final result of a progressive call');
  checkEqual(progress, [0, 1, 2], 'progressive results from the JS callee');
  await leave(progressCaller);
  await callee.session.unregister(counting);
  passed('progressive_results');

  // -- PubSub ---------------------------------------------------------------------------------------------
  stage = `${name}: subscribe + publish`;
  const topic = 'com.example.js.topic';
  const events = eventQueue();
  const subscription = await callee.session.subscribe(topic, events.handler);
  check(subscription instanceof autobahn.Subscription && Number.isSafeInteger(subscription.id),
    'subscribe() yields a Subscription with an integer id', subscription);

  const eventArgs = ['hello', 42, 1.5];
  const eventKwargs = { from: 'js', list: [1, { deep: null }], unicode: 'Grüße ☘' };
  if (binary) eventKwargs.blob = Buffer.from([0, 1, 2, 0xfe, 0xff]);
  const publication = await withTimeout(
    caller.session.publish(topic, eventArgs, eventKwargs, { acknowledge: true }), 5000, 'PUBLISHED');
  check(publication instanceof autobahn.Publication && Number.isSafeInteger(publication.id) && publication.id > 0,
    'acknowledged publish yields a Publication with a positive integer id', publication);
  const event = await events.next(5000, 'the EVENT');
  checkEqual(event.args, eventArgs, 'event args');
  if (binary) {
    check(Buffer.isBuffer(event.kwargs.blob), 'binary kwarg arrives as a Buffer', event.kwargs);
    check(event.kwargs.blob.equals(eventKwargs.blob), 'binary kwarg round-trips', event.kwargs.blob);
    checkEqual({ ...event.kwargs, blob: null }, { ...eventKwargs, blob: null }, 'event kwargs');
  } else {
    checkEqual(event.kwargs, eventKwargs, 'event kwargs');
  }
  checkEqual(event.details.publication, publication.id, 'EVENT publication id equals the PUBLISHED id');
  checkEqual(event.details.topic, topic, 'event topic');
  run.publication_id = publication.id;
  passed('publish_acknowledged');

  // An unacknowledged publish returns nothing but is still delivered.
  checkEqual(caller.session.publish(topic, ['second']), undefined, 'publish without acknowledge returns nothing');
  const second = await events.next(5000, 'the unacknowledged EVENT');
  checkEqual([second.args, second.kwargs], [['second'], {}], 'unacknowledged event payload');
  passed('publish_unacknowledged');

  // -- Python side (cross-language) ---------------------------------------------------------------------
  if (opts.pyProcedure) {
    stage = `${name}: call Python procedure`;
    const py = await withTimeout(
      caller.session.call(opts.pyProcedure, [6, 7], { from: 'js', serializer: name }), 5000, 'Python procedure');
    run.python_call = asResult(py);
    passed('python_call');
  }
  if (opts.pyTopic) {
    stage = `${name}: publish to Python`;
    const pyKwargs = { from: 'js', serializer: name, unicode: 'Grüße ☘' };
    if (binary) pyKwargs.blob = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    const pub = await withTimeout(
      caller.session.publish(opts.pyTopic, ['hello python', name], pyKwargs, { acknowledge: true }), 5000,
      'PUBLISHED for the Python topic');
    run.python_publication_id = pub.id;
    passed('python_publish');
  }

  // -- Unsubscribe / unregister ---------------------------------------------------------------------------
  stage = `${name}: unsubscribe`;
  const unsubscribed = await withTimeout(callee.session.unsubscribe(subscription), 5000, 'UNSUBSCRIBED');
  check(unsubscribed === true, 'unsubscribe() resolves true', unsubscribed);
  check(!subscription.active, 'subscription inactive after unsubscribe', subscription.active);
  await caller.session.publish(topic, ['after unsubscribe'], {}, { acknowledge: true });
  await sleep(150);
  checkEqual(events.pending, 0, 'events delivered after unsubscribe');
  passed('unsubscribe');

  stage = `${name}: unregister`;
  await withTimeout(callee.session.unregister(registration), 5000, 'UNREGISTERED');
  check(!registration.active, 'registration inactive after unregister', registration.active);
  try {
    const r = await withTimeout(caller.session.call(procedure, [1, 2]), 5000, 'error after unregister');
    check(false, 'call after unregister should fail', r);
  } catch (e) {
    if (e instanceof CheckError) throw e;
    checkEqual(e.error, 'wamp.error.no_such_procedure', 'error URI after unregister');
  }
  passed('unregister');

  // -- Leave ----------------------------------------------------------------------------------------------
  stage = `${name}: leave`;
  await Promise.all([leave(caller), leave(callee)]);
  passed('leave');
  run.ok = true;
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        serializers: { type: 'string', default: 'json,msgpack,cbor' },
        'py-procedure': { type: 'string' },
        'py-topic': { type: 'string' },
        timeout: { type: 'string', default: '15' },
      },
    });
  } catch (e) {
    return fail(`bad arguments: ${e.message}`, EXIT_USAGE);
  }
  const [url, realm] = parsed.positionals;
  const timeoutSeconds = Number(parsed.values.timeout);
  if (!url || !realm || parsed.positionals.length !== 2 || !/^(wss?|rs):\/\//.test(url) || !(timeoutSeconds > 0)) {
    return fail('usage: node interop.mjs <ws://host:port/path | rs://host:port> <realm> [--serializers json,msgpack,cbor] '
      + '[--py-procedure URI] [--py-topic URI] [--timeout SECONDS]', EXIT_USAGE);
  }
  setTimeout(() => fail(`overall timeout of ${timeoutSeconds} s exceeded`, EXIT_TIMEOUT), timeoutSeconds * 1000);

  results.url = url;
  results.realm = realm;
  const opts = { pyProcedure: parsed.values['py-procedure'], pyTopic: parsed.values['py-topic'] };
  for (const name of parsed.values.serializers.split(',').map((s) => s.trim()).filter(Boolean)) {
    await runSerializer(url, realm, name, opts);
  }
  stage = 'done';
  results.ok = true;
  emit(results, 0);
}

process.on('unhandledRejection', (e) => fail(`unhandled rejection: ${errorText(e)}`));
process.on('uncaughtException', (e) => fail(`uncaught exception: ${errorText(e)}`));
main().catch((e) => fail(errorText(e)));
