// Cloverleaf web console: AutobahnJS (autobahn.min.js, served by the node) and the WAMP meta API.
//
// Everything shown is set as text (textContent, createTextNode), never parsed as HTML.
/* global autobahn */
(function () {
  'use strict';

  // Rows fetched and shown per table, events kept at most in the stream.
  const MAX_ROWS = 500;
  const MAX_EVENTS = 1000;
  const MAX_SHOWN_CHARS = 4000;
  const STORE_USER = 'cloverleaf.console.user';
  const STORE_REALM = 'cloverleaf.console.realm';

  const $ = (id) => document.getElementById(id);

  // -- state ---------------------------------------------------------------------------------

  let generation = 0;        // bumped by every connect/logout: callbacks of older connections are ignored
  let connection = null;
  let session = null;
  let credentials = null;    // {user, password} while logged in (kept to switch realms)
  let realm = null;
  let realms = [];
  const sessions = new Map();       // session id -> details
  const registrations = new Map();  // registration id -> {uri, match, invoke, callees}
  const subscriptions = new Map();  // subscription id -> {uri, match, subscribers}
  let stream = null;                // {subscription, topic, match}
  let eventCount = 0;
  let renderTimer = null;
  // Reconnection after a lost connection (a router restart): the credentials stay in this page's
  // memory while it is open (never stored), so the console signs in again by itself.
  let reconnectTimer = null;
  let reconnectDelay = 500;
  let figuresTimer = null;
  let lastFigures = null;           // {at, stats} of the previous sample
  let picked = { session: null, registration: null, subscription: null };
  let callInFlight = null;          // the pending call's promise (AutobahnJS gives it cancel())
  let killArmedUntil = 0;

  // -- small helpers -------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function shorten(text) {
    return text.length > MAX_SHOWN_CHARS ? text.slice(0, MAX_SHOWN_CHARS) + ' …' : text;
  }

  function json(value, pretty) {
    let text;
    try {
      text = JSON.stringify(value, null, pretty ? 2 : 0);
    } catch (error) {
      text = String(value);
    }
    return shorten(text === undefined ? 'null' : text);
  }

  function store(key, value) {
    try { window.localStorage.setItem(key, value); } catch (error) { /* storage may be off */ }
  }

  function recall(key) {
    try { return window.localStorage.getItem(key); } catch (error) { return null; }
  }

  function websocketUrl() {
    const base = window.location.pathname.replace(/[^/]*$/, '');
    return (window.location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host + base + 'ws';
  }

  function parseJson(text, kind, label) {
    const trimmed = text.trim();
    if (!trimmed) return kind === 'list' ? [] : {};
    let value;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      throw new Error(label + ': not valid JSON (' + error.message + ')');
    }
    if (kind === 'list' && !Array.isArray(value)) throw new Error(label + ': a JSON list, such as [1, "two"]');
    if (kind === 'object' && (value === null || typeof value !== 'object' || Array.isArray(value))) {
      throw new Error(label + ': a JSON object, such as {"key": "value"}');
    }
    return value;
  }

  function errorText(error) {
    if (error instanceof autobahn.Error) return error.error;
    if (error && typeof error === 'object' && typeof error.error === 'string') return error.error;
    if (error instanceof Error) return error.message;
    return String(error);
  }

  function showOutcome(target, ok, title, sections) {
    target.replaceChildren();
    const box = el('div', 'outcome ' + (ok ? 'ok' : 'failed'));
    box.appendChild(el('div', 'title', title));
    for (const [label, value] of sections) {
      if (label) box.appendChild(el('div', 'muted', label));
      box.appendChild(el('pre', null, value));
    }
    target.appendChild(box);
  }

  function errorSections(error) {
    const sections = [];
    if (error instanceof autobahn.Error || (error && Array.isArray(error.args))) {
      if (error.args && error.args.length) sections.push(['args', json(error.args, true)]);
      if (error.kwargs && Object.keys(error.kwargs).length) sections.push(['kwargs', json(error.kwargs, true)]);
    }
    return sections;
  }

  // -- login, realms, logout -----------------------------------------------------------------

  function showLogin(message) {
    $('app').hidden = true;
    $('session-bar').hidden = true;
    $('login').hidden = false;
    $('login-button').disabled = false;
    $('login-error').textContent = message || '';
    $('login-password').value = '';
    (message ? $('login-password') : $('login-user')).focus();
  }

  function failure(reason, details) {
    // why a connection that never opened failed: the router's ABORT, or no router at all
    if (reason === 'unreachable') return { text: 'Cannot reach the router.', retry: true };
    if (details && details.reason === 'wamp.error.no_such_realm') {
      return { text: details.message || 'No such realm.', retry: false };
    }
    if (details && details.reason) return { text: 'Login failed.', retry: false };
    return { text: 'Cannot reach the router.', retry: true };  // dropped before any answer
  }

  function connect(user, password, realmName, onFailure, resume) {
    const mine = ++generation;
    let opened = false;
    const conn = new autobahn.Connection({
      url: websocketUrl(),
      realm: realmName,
      authmethods: ['ticket'],
      authid: user,
      onchallenge: function (ses, method) {
        if (method !== 'ticket') throw new Error('unexpected authentication method ' + method);
        return password;
      },
      serializers: [new autobahn.serializer.JSONSerializer()],
      max_retries: 0,
      retry_if_unreachable: false,
    });
    conn.onopen = function (ses, details) {
      if (mine !== generation) {
        conn.close();
        return;
      }
      opened = true;
      connection = conn;
      session = ses;
      credentials = { user: user, password: password };
      realm = realmName;
      const extra = details.authextra || {};
      realms = Array.isArray(extra.realms) && extra.realms.length ? extra.realms.map(String) : [realmName];
      store(STORE_USER, user);
      store(STORE_REALM, realmName);
      reconnectDelay = 500;
      enter(details, resume);
    };
    conn.onclose = function (reason, details) {
      if (mine !== generation) return true;  // superseded: a newer connection or a logout
      connection = null;
      session = null;
      stopFigures();
      if (!opened) {
        const why = failure(reason, details);
        onFailure(why.text, why.retry);
      } else {
        // lost (the router restarted, the network dropped): sign in again with the same
        // credentials, and take the event stream along
        const saved = { user: user, password: password };
        const last = stream ? { topic: stream.topic, match: stream.match } : null;
        stream = null;
        setStatus(false, 'reconnecting…');
        scheduleReconnect(saved, realmName, last);
      }
      return true;  // the console reconnects itself (AutobahnJS stops after a GOODBYE anyway)
    };
    conn.open();
  }

  function scheduleReconnect(saved, realmName, last) {
    const delay = reconnectDelay;
    reconnectDelay = Math.min(reconnectDelay * 2, 10000);
    window.clearTimeout(reconnectTimer);
    reconnectTimer = window.setTimeout(function () {
      reconnectTimer = null;
      connect(saved.user, saved.password, realmName, function (text, retry) {
        if (retry) {
          setStatus(false, 'reconnecting…');
          scheduleReconnect(saved, realmName, last);
        } else {
          credentials = null;
          showLogin('The router is back but refused the login: ' + text);
        }
      }, last);
    }, delay);
  }

  function logout() {
    generation += 1;
    window.clearTimeout(reconnectTimer);
    reconnectTimer = null;
    stopFigures();
    const conn = connection;
    connection = null;
    session = null;
    credentials = null;
    stream = null;
    if (conn) conn.close();
    showLogin('');
  }

  function switchRealm(next) {
    if (!credentials || next === realm) return;
    const previous = realm;
    const saved = credentials;
    const old = connection;
    generation += 1;  // the old connection's close is not a loss
    connection = null;
    session = null;
    stream = null;
    if (old) old.close();
    setStatus(false, 'switching…');
    connect(saved.user, saved.password, next, function () {
      // the new realm refused us: go back to the previous one
      connect(saved.user, saved.password, previous, function (text) { showLogin(text); });
    });
  }

  function setStatus(up, text) {
    $('connection-status').classList.toggle('down', !up);
    $('status-text').textContent = text || (up ? 'connected' : 'disconnected');
  }

  function enter(details, resume) {
    $('login').hidden = true;
    $('app').hidden = false;
    $('session-bar').hidden = false;
    $('login-password').value = '';
    $('whoami').textContent = (details.authid || credentials.user) + ' @ ' + realm;
    const select = $('realm-select');
    select.replaceChildren();
    for (const name of realms) {
      const option = el('option', null, name);
      option.value = name;
      select.appendChild(option);
    }
    select.value = realm;
    select.disabled = realms.length < 2;
    setStatus(true);
    resetStream();
    clearEvents();
    picked = { session: null, registration: null, subscription: null };
    $('session-details').hidden = true;
    $('registration-details').hidden = true;
    $('subscription-details').hidden = true;
    startFigures(session);
    start(session).catch(function (error) {
      console.error('loading the realm failed', error);
    });
    if (resume) {
      $('stream-topic').value = resume.topic;
      $('stream-match').value = resume.match;
      subscribeStream(null);
    }
  }

  // -- live figures: cloverleaf.realm.stats every 2 s ----------------------------------------

  function startFigures(ses) {
    stopFigures();
    lastFigures = null;
    const sample = function () {
      ses.call('cloverleaf.realm.stats').then(function (stats) {
        if (ses !== session || !stats) return;
        showFigures(stats, performance.now());
      }, function () { /* not authorized, or gone: the card keeps its last figures */ });
    };
    sample();
    figuresTimer = window.setInterval(sample, 2000);
  }

  function stopFigures() {
    if (figuresTimer !== null) window.clearInterval(figuresTimer);
    figuresTimer = null;
  }

  function showFigures(stats, at) {
    const rate = function (key) {
      if (!lastFigures) return '…';
      const seconds = (at - lastFigures.at) / 1000;
      const delta = (stats[key] || 0) - (lastFigures.stats[key] || 0);
      return seconds > 0 ? (delta / seconds).toFixed(delta / seconds < 10 ? 1 : 0) : '…';
    };
    $('fig-sessions').textContent = String(stats.sessions);
    $('fig-in').textContent = rate('messages_received');
    $('fig-out').textContent = rate('messages_sent');
    $('fig-calls').textContent = rate('calls_routed');
    $('fig-events').textContent = rate('events_delivered');
    $('fig-dropped').textContent = String(stats.events_dropped);
    $('fig-dropped').classList.toggle('alert', stats.events_dropped > 0);
    $('fig-errors').textContent = String(stats.errors_sent);
    lastFigures = { at: at, stats: stats };
  }

  // -- the realm's state: meta API and meta events ------------------------------------------

  async function start(ses) {
    sessions.clear();
    registrations.clear();
    subscriptions.clear();
    scheduleRender();
    const handlers = {
      'wamp.session.on_join': function (args) {
        const info = args[0];
        if (info && typeof info.session === 'number') {
          sessions.set(info.session, info);
          scheduleRender();
        }
      },
      'wamp.session.on_leave': function (args) {
        sessions.delete(args[0]);
        scheduleRender();
      },
      'wamp.registration.on_create': function (args) {
        const info = args[1];
        if (info && typeof info.id === 'number' && !registrations.has(info.id)) {
          registrations.set(info.id, { uri: info.uri, match: info.match, invoke: info.invoke, callees: 0 });
          scheduleRender();
        }
      },
      'wamp.registration.on_register': function (args) { refreshRegistration(ses, args[1]); },
      'wamp.registration.on_unregister': function (args) { refreshRegistration(ses, args[1]); },
      'wamp.registration.on_delete': function (args) {
        registrations.delete(args[1]);
        scheduleRender();
      },
      'wamp.subscription.on_create': function (args) {
        const info = args[1];
        if (info && typeof info.id === 'number' && !subscriptions.has(info.id)) {
          subscriptions.set(info.id, { uri: info.uri, match: info.match, subscribers: 0 });
          scheduleRender();
        }
      },
      'wamp.subscription.on_subscribe': function (args) { refreshSubscription(ses, args[1]); },
      'wamp.subscription.on_unsubscribe': function (args) { refreshSubscription(ses, args[1]); },
      'wamp.subscription.on_delete': function (args) {
        subscriptions.delete(args[1]);
        scheduleRender();
      },
    };
    // Subscribe first, then list: what changes meanwhile arrives as an event and is applied on top.
    await Promise.all(Object.keys(handlers).map((topic) => ses.subscribe(topic, handlers[topic])));
    await loadAll(ses);
  }

  async function loadAll(ses) {
    const ids = (await ses.call('wamp.session.list')) || [];
    const shown = ids.slice(0, MAX_ROWS);
    const details = await Promise.all(shown.map((id) => ses.call('wamp.session.get', [id]).catch(() => null)));
    if (ses !== session) return;
    sessions.clear();
    for (const info of details) {
      if (info && typeof info.session === 'number') sessions.set(info.session, info);
    }
    $('sessions-note').textContent = ids.length > MAX_ROWS ? 'Showing ' + MAX_ROWS + ' of ' + ids.length + '.' : '';
    await Promise.all([loadRegistrations(ses), loadSubscriptions(ses)]);
    scheduleRender();
  }

  function allIds(lists) {
    const ids = [];
    for (const key of ['exact', 'prefix', 'wildcard']) {
      if (lists && Array.isArray(lists[key])) ids.push(...lists[key]);
    }
    return ids;
  }

  async function loadRegistrations(ses) {
    const ids = allIds(await ses.call('wamp.registration.list'));
    $('registrations-note').textContent = ids.length > MAX_ROWS ? 'Showing ' + MAX_ROWS + ' of ' + ids.length + '.' : '';
    await Promise.all(ids.slice(0, MAX_ROWS).map((id) => refreshRegistration(ses, id)));
  }

  async function loadSubscriptions(ses) {
    const ids = allIds(await ses.call('wamp.subscription.list'));
    $('subscriptions-note').textContent = ids.length > MAX_ROWS ? 'Showing ' + MAX_ROWS + ' of ' + ids.length + '.' : '';
    await Promise.all(ids.slice(0, MAX_ROWS).map((id) => refreshSubscription(ses, id)));
  }

  async function refreshRegistration(ses, id) {
    try {
      let known = registrations.get(id);
      if (!known) {
        const info = await ses.call('wamp.registration.get', [id]);
        known = { uri: info.uri, match: info.match, invoke: info.invoke, callees: 0 };
      }
      known.callees = await ses.call('wamp.registration.count_callees', [id]);
      if (ses === session) registrations.set(id, known);
    } catch (error) {
      registrations.delete(id);  // gone meanwhile
    }
    scheduleRender();
  }

  async function refreshSubscription(ses, id) {
    try {
      let known = subscriptions.get(id);
      if (!known) {
        const info = await ses.call('wamp.subscription.get', [id]);
        known = { uri: info.uri, match: info.match, subscribers: 0 };
      }
      known.subscribers = await ses.call('wamp.subscription.count_subscribers', [id]);
      if (ses === session) subscriptions.set(id, known);
    } catch (error) {
      subscriptions.delete(id);
    }
    scheduleRender();
  }

  // -- rendering -----------------------------------------------------------------------------

  function scheduleRender() {
    if (renderTimer === null) renderTimer = window.setTimeout(render, 40);
  }

  function cell(text, className) {
    return el('td', className, text === undefined || text === null || text === '' ? '—' : text);
  }

  function pill(text) {
    const td = el('td');
    td.appendChild(el('span', 'pill', text || '—'));
    return td;
  }

  function fill(table, rows, columns, emptyText) {
    const body = $(table).tBodies[0];
    body.replaceChildren();
    if (!rows.length) {
      const td = el('td', 'empty', emptyText);
      td.colSpan = columns;
      const tr = el('tr');
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    for (const row of rows.slice(0, MAX_ROWS)) body.appendChild(row);
  }

  function transportText(transport) {
    if (!transport || typeof transport !== 'object') return '';
    const parts = [transport.type, transport.serializer].filter(Boolean).join('/');
    return transport.peer ? parts + '  ' + transport.peer : parts;
  }

  function render() {
    renderTimer = null;
    const ownId = session ? session.id : null;

    const sessionRows = [...sessions.values()]
      .sort((a, b) => String(a.authid).localeCompare(String(b.authid)) || a.session - b.session)
      .map(function (info) {
        const tr = el('tr', 'pickable' + (info.session === ownId ? ' self' : '') +
          (info.session === picked.session ? ' picked' : ''));
        tr.dataset.session = String(info.session);
        tr.addEventListener('click', function () { pickSession(info.session); });
        tr.append(cell(info.session), cell(info.authid), cell(info.authrole), pill(info.authmethod),
          cell(transportText(info.transport)));
        return tr;
      });
    fill('sessions', sessionRows, 5, 'No sessions.');
    $('sessions-count').textContent = String(sessions.size);

    const registrationRows = [...registrations.entries()]
      .sort((a, b) => String(a[1].uri).localeCompare(String(b[1].uri)))
      .map(function ([id, info]) {
        const tr = el('tr', 'pickable' + (id === picked.registration ? ' picked' : ''));
        tr.dataset.registration = String(id);
        tr.addEventListener('click', function () { pickRegistration(id); });
        tr.append(cell(info.uri), pill(info.match), pill(info.invoke), cell(info.callees, 'num'));
        return tr;
      });
    fill('registrations', registrationRows, 4, 'No registrations.');
    $('registrations-count').textContent = String(registrations.size);

    const showMeta = $('show-meta').checked;
    const visible = [...subscriptions.entries()]
      .filter(([, info]) => showMeta || !String(info.uri).startsWith('wamp.'));
    const subscriptionRows = visible
      .sort((a, b) => String(a[1].uri).localeCompare(String(b[1].uri)))
      .map(function ([id, info]) {
        const tr = el('tr', 'pickable' + (id === picked.subscription ? ' picked' : ''));
        tr.dataset.subscription = String(id);
        tr.addEventListener('click', function () { pickSubscription(id); });
        tr.append(cell(info.uri), pill(info.match), cell(info.subscribers, 'num'));
        return tr;
      });
    fill('subscriptions', subscriptionRows, 3, showMeta ? 'No subscriptions.' : 'No subscriptions (wamp.* hidden).');
    $('subscriptions-count').textContent = String(visible.length);
    if (picked.session !== null && !sessions.has(picked.session)) {
      $('kill-result').textContent = 'The session has left.';
      $('kill-button').disabled = true;
    }
  }

  // -- picking a row: details, and what the row is good for ----------------------------------

  async function pickSession(id) {
    const ses = session;
    if (!ses) return;
    picked.session = id;
    killArmedUntil = 0;
    $('kill-button').textContent = 'Kill session';
    $('kill-button').classList.remove('armed');
    $('kill-button').disabled = id === ses.id;
    $('kill-button').title = id === ses.id ? 'this is the console\'s own session' : '';
    $('kill-result').textContent = '';
    $('session-details-id').textContent = String(id);
    $('session-json').textContent = 'loading…';
    $('session-details').hidden = false;
    scheduleRender();
    try {
      const info = await ses.call('wamp.session.get', [id]);
      if (picked.session === id) $('session-json').textContent = json(info, true);
    } catch (error) {
      if (picked.session === id) $('session-json').textContent = 'Error: ' + errorText(error);
    }
  }

  async function killPicked() {
    const id = picked.session;
    if (!session || id === null) return;
    if (performance.now() > killArmedUntil) {  // two clicks: a kill cannot be undone
      killArmedUntil = performance.now() + 4000;
      $('kill-button').textContent = 'Click again to kill';
      $('kill-button').classList.add('armed');
      return;
    }
    killArmedUntil = 0;
    $('kill-button').textContent = 'Kill session';
    $('kill-button').classList.remove('armed');
    try {
      const who = credentials ? credentials.user : 'the console';
      await session.call('wamp.session.kill', [id], { reason: 'wamp.close.killed',
        message: 'killed from the web console by ' + who });
      $('kill-result').textContent = 'Killed session ' + id + '.';
      $('kill-button').disabled = true;
    } catch (error) {
      $('kill-result').textContent = 'Cannot kill: ' + errorText(error);
    }
  }

  async function pickRegistration(id) {
    const ses = session;
    const info = registrations.get(id);
    if (!ses || !info) return;
    picked.registration = id;
    $('call-procedure').value = info.uri;  // ready to call (a pattern: complete the URI)
    $('registration-details-uri').textContent = info.uri + (info.match && info.match !== 'exact' ? ' (' + info.match + ')' : '');
    $('registration-callees').textContent = 'loading…';
    $('registration-details').hidden = false;
    scheduleRender();
    try {
      const callees = await ses.call('wamp.registration.list_callees', [id]);
      if (picked.registration === id) $('registration-callees').textContent = (callees || []).join(', ') || 'none';
    } catch (error) {
      if (picked.registration === id) $('registration-callees').textContent = 'Error: ' + errorText(error);
    }
  }

  async function pickSubscription(id) {
    const ses = session;
    const info = subscriptions.get(id);
    if (!ses || !info) return;
    picked.subscription = id;
    $('subscription-details-uri').textContent = info.uri + (info.match && info.match !== 'exact' ? ' (' + info.match + ')' : '');
    $('subscription-subscribers').textContent = 'loading…';
    $('subscription-details').hidden = false;
    $('stream-topic').value = info.uri;  // and stream it
    $('stream-match').value = info.match || 'exact';
    subscribeStream(null);
    scheduleRender();
    try {
      const subscribers = await ses.call('wamp.subscription.list_subscribers', [id]);
      if (picked.subscription === id) {
        $('subscription-subscribers').textContent = (subscribers || []).join(', ') || 'none';
      }
    } catch (error) {
      if (picked.subscription === id) $('subscription-subscribers').textContent = 'Error: ' + errorText(error);
    }
  }

  // -- call and publish ----------------------------------------------------------------------

  async function call(event) {
    event.preventDefault();
    const target = $('call-result');
    const procedure = $('call-procedure').value.trim();
    let args;
    let kwargs;
    const options = {};
    try {
      if (!procedure) throw new Error('Procedure: a URI, such as com.example.add');
      args = parseJson($('call-args').value, 'list', 'Arguments');
      kwargs = parseJson($('call-kwargs').value, 'object', 'Keyword arguments');
      const timeoutText = $('call-timeout').value.trim();
      if (timeoutText) {
        const seconds = Number(timeoutText);
        if (!(seconds >= 0)) throw new Error('Timeout: seconds, such as 2.5 (empty: none)');
        if (seconds > 0) options.timeout = Math.max(1, Math.round(seconds * 1000));  // WAMP: milliseconds
      }
    } catch (error) {
      showOutcome(target, false, error.message, []);
      return;
    }
    if (!session) return;
    const button = $('call-button');
    button.disabled = true;
    const started = performance.now();
    try {
      const pending = session.call(procedure, args, kwargs, options);
      callInFlight = pending;
      $('call-cancel').disabled = false;
      showOutcome(target, true, 'Calling ' + procedure + '…', []);
      const result = await pending;
      const took = Math.round(performance.now() - started) + ' ms';
      if (result instanceof autobahn.Result) {
        const sections = [];
        sections.push(['args', json(result.args || [], true)]);
        if (result.kwargs && Object.keys(result.kwargs).length) sections.push(['kwargs', json(result.kwargs, true)]);
        showOutcome(target, true, 'Result (' + took + ')', sections);
      } else {
        showOutcome(target, true, 'Result (' + took + ')', [[null, json(result === undefined ? null : result, true)]]);
      }
    } catch (error) {
      showOutcome(target, false, 'Error: ' + errorText(error), errorSections(error));
    } finally {
      callInFlight = null;
      $('call-cancel').disabled = true;
      button.disabled = false;
    }
  }

  function cancelCall() {
    // mode kill: the router interrupts the callee and answers with wamp.error.canceled (AutobahnJS's
    // default mode would reject at once and then take the router's answer for a protocol error)
    if (callInFlight && typeof callInFlight.cancel === 'function') callInFlight.cancel({ mode: 'kill' });
  }

  function sessionIds(text, label) {
    const trimmed = text.trim();
    if (!trimmed) return null;
    return trimmed.split(/[\s,]+/).map(function (part) {
      const id = Number(part);
      if (!Number.isInteger(id) || id <= 0) throw new Error(label + ': session IDs, such as 1234, 5678');
      return id;
    });
  }

  async function publish(event) {
    event.preventDefault();
    const target = $('publish-result');
    const topic = $('publish-topic').value.trim();
    let args;
    let kwargs;
    const options = {};
    try {
      if (!topic) throw new Error('Topic: a URI, such as com.example.news');
      args = parseJson($('publish-args').value, 'list', 'Arguments');
      kwargs = parseJson($('publish-kwargs').value, 'object', 'Keyword arguments');
      const exclude = sessionIds($('publish-exclude').value, 'Exclude');
      const eligible = sessionIds($('publish-eligible').value, 'Only to');
      if (exclude) options.exclude = exclude;
      if (eligible) options.eligible = eligible;
    } catch (error) {
      showOutcome(target, false, error.message, []);
      return;
    }
    if (!session) return;
    const button = $('publish-button');
    button.disabled = true;
    try {
      const acknowledged = $('publish-ack').checked;
      if (acknowledged) options.acknowledge = true;
      if ($('publish-me').checked) options.exclude_me = false;
      if ($('publish-retain').checked) options.retain = true;
      const publication = await session.publish(topic, args, kwargs, options);
      const id = publication && publication.id !== undefined ? ' (publication ' + publication.id + ')' : '';
      const retained = options.retain ? ', retained' : '';
      showOutcome(target, true, (acknowledged ? 'Published to ' : 'Sent to ') + topic + id + retained +
        (acknowledged ? '' : ' (not acknowledged)'), []);
    } catch (error) {
      showOutcome(target, false, 'Error: ' + errorText(error), errorSections(error));
    } finally {
      button.disabled = false;
    }
  }

  // -- event stream --------------------------------------------------------------------------

  function keep() {
    const value = parseInt($('stream-keep').value, 10);
    return Number.isFinite(value) ? Math.min(Math.max(value, 1), MAX_EVENTS) : 100;
  }

  function eventRows() {
    return $('events').tBodies[0].querySelectorAll('tr.event');
  }

  function trimEvents() {
    const rows = eventRows();
    const limit = keep();
    for (let index = limit; index < rows.length; index += 1) rows[index].remove();
    $('events-count').textContent = String(Math.min(rows.length, limit));
  }

  function showEmptyEvents() {
    // the table's empty state says why it is empty
    const body = $('events').tBodies[0];
    if (eventRows().length) return;
    const td = el('td', 'empty', stream ? 'No events yet on ' + stream.topic + ' (' + stream.match + ').'
      : 'Not subscribed: enter a topic above, or click a subscription.');
    td.colSpan = 4;
    const tr = el('tr', 'empty-row');
    tr.appendChild(td);
    body.replaceChildren(tr);
  }

  function resetStream() {
    stream = null;
    $('stream-button').textContent = 'Subscribe';
    $('stream-stop').disabled = true;
    $('stream-status').textContent = 'Not subscribed.';
    $('stream-error').textContent = '';
    showEmptyEvents();
  }

  function timeText(date) {
    const pad = (n, width) => String(n).padStart(width, '0');
    return pad(date.getHours(), 2) + ':' + pad(date.getMinutes(), 2) + ':' + pad(date.getSeconds(), 2) + '.' +
      pad(date.getMilliseconds(), 3);
  }

  function onEvent(mine) {
    return function (args, kwargs, details) {
      if (stream !== mine) return;
      eventCount += 1;
      const tr = el('tr', 'event fresh');
      tr.append(
        cell(timeText(new Date()), 'time'),
        cell((details && details.topic) || mine.topic),
        cell(json(args || [])),
        cell(kwargs && Object.keys(kwargs).length ? json(kwargs) : ''),
      );
      const body = $('events').tBodies[0];
      for (const empty of body.querySelectorAll('tr.empty-row')) empty.remove();
      body.insertBefore(tr, body.firstChild);
      trimEvents();
      $('stream-status').textContent = streamText(mine);
    };
  }

  function streamText(current) {
    return 'Streaming ' + current.topic + ' (' + current.match + '), ' + eventCount + ' received.';
  }

  async function stopStream() {
    const current = stream;
    resetStream();
    if (current && current.subscription && session) {
      try { await session.unsubscribe(current.subscription); } catch (error) { /* gone already */ }
    }
  }

  async function subscribeStream(event) {
    if (event) event.preventDefault();
    const topic = $('stream-topic').value.trim();
    const match = $('stream-match').value;
    $('stream-error').textContent = '';
    if (!topic) {
      $('stream-error').textContent = 'Topic: a URI or pattern, such as com.example.news';
      return;
    }
    if (!session) return;
    await stopStream();
    const mine = { subscription: null, topic: topic, match: match };
    stream = mine;
    eventCount = 0;
    clearEvents();  // another topic: its own table and count
    $('stream-status').textContent = 'Subscribing to ' + topic + '…';
    try {
      const options = match === 'exact' ? {} : { match: match };
      const subscription = await session.subscribe(topic, onEvent(mine), options);
      if (stream !== mine) {
        session.unsubscribe(subscription).catch(() => {});
        return;
      }
      mine.subscription = subscription;
      $('stream-button').textContent = 'Change';
      $('stream-stop').disabled = false;
      $('stream-status').textContent = streamText(mine);
    } catch (error) {
      if (stream === mine) resetStream();
      $('stream-error').textContent = 'Cannot subscribe: ' + errorText(error);
    }
  }

  function clearEvents() {
    $('events').tBodies[0].replaceChildren();
    $('events-count').textContent = '0';
    showEmptyEvents();
  }

  async function loadRealms() {
    // the login form's realms: the console's own list (realms.json beside this page)
    const select = $('login-realm');
    let names = [];
    try {
      const answer = await fetch('realms.json', { cache: 'no-store' });
      const body = await answer.json();
      names = Array.isArray(body.realms) ? body.realms.map(String) : [];
    } catch (error) {
      $('login-error').textContent = 'Cannot load the list of realms: is the node up?';
    }
    select.replaceChildren();
    for (const name of names) {
      const option = el('option', null, name);
      option.value = name;
      select.appendChild(option);
    }
    const last = recall(STORE_REALM);
    if (last && names.includes(last)) select.value = last;
  }

  // -- wiring --------------------------------------------------------------------------------

  function init() {
    const user = recall(STORE_USER);
    if (user) $('login-user').value = user;
    loadRealms();
    $('login-form').addEventListener('submit', function (event) {
      event.preventDefault();
      const name = $('login-user').value.trim();
      const password = $('login-password').value;
      const realmName = $('login-realm').value;
      if (!name || !password || !realmName) {
        $('login-error').textContent = 'User, password and realm are needed.';
        return;
      }
      $('login-error').textContent = '';
      $('login-button').disabled = true;
      connect(name, password, realmName, function (text) { showLogin(text); });
    });
    $('logout-button').addEventListener('click', logout);
    $('realm-select').addEventListener('change', function (event) { switchRealm(event.target.value); });
    $('refresh-button').addEventListener('click', function () {
      if (session) loadAll(session).catch((error) => console.error('refresh failed', error));
    });
    $('show-meta').addEventListener('change', scheduleRender);
    $('call-form').addEventListener('submit', call);
    $('call-cancel').addEventListener('click', cancelCall);
    $('kill-button').addEventListener('click', killPicked);
    $('session-details-close').addEventListener('click', function () {
      picked.session = null;
      $('session-details').hidden = true;
      scheduleRender();
    });
    $('publish-form').addEventListener('submit', publish);
    $('stream-form').addEventListener('submit', subscribeStream);
    $('stream-stop').addEventListener('click', stopStream);
    $('stream-clear').addEventListener('click', clearEvents);
    $('stream-keep').addEventListener('input', trimEvents);
    if (typeof autobahn === 'undefined') {
      $('login-error').textContent = 'AutobahnJS (autobahn.min.js) did not load.';
      $('login-button').disabled = true;
      return;
    }
    (user ? $('login-password') : $('login-user')).focus();
  }

  init();
}());
