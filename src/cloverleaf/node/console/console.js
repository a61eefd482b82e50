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

  function connect(user, password, realmName, onFailure) {
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
      enter(details);
    };
    conn.onclose = function (reason, details) {
      if (mine !== generation) return true;  // superseded: a newer connection or a logout
      connection = null;
      session = null;
      if (!opened) {
        onFailure(reason === 'unreachable' ? 'Cannot reach the router.' : 'Login failed.');
      } else {
        stream = null;
        credentials = null;
        setStatus(false);
        showLogin('The connection was lost. Please log in again.');
      }
      return true;  // no automatic reconnection
    };
    conn.open();
  }

  function logout() {
    generation += 1;
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

  function enter(details) {
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
    start(session).catch(function (error) {
      console.error('loading the realm failed', error);
    });
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
        const tr = el('tr', info.session === ownId ? 'self' : null);
        tr.dataset.session = String(info.session);
        tr.append(cell(info.session), cell(info.authid), cell(info.authrole), pill(info.authmethod),
          cell(transportText(info.transport)));
        return tr;
      });
    fill('sessions', sessionRows, 5, 'No sessions.');
    $('sessions-count').textContent = String(sessions.size);

    const registrationRows = [...registrations.values()]
      .sort((a, b) => String(a.uri).localeCompare(String(b.uri)))
      .map(function (info) {
        const tr = el('tr');
        tr.append(cell(info.uri), pill(info.match), pill(info.invoke), cell(info.callees, 'num'));
        return tr;
      });
    fill('registrations', registrationRows, 4, 'No registrations.');
    $('registrations-count').textContent = String(registrations.size);

    const showMeta = $('show-meta').checked;
    const visible = [...subscriptions.values()].filter((info) => showMeta || !String(info.uri).startsWith('wamp.'));
    const subscriptionRows = visible
      .sort((a, b) => String(a.uri).localeCompare(String(b.uri)))
      .map(function (info) {
        const tr = el('tr');
        tr.append(cell(info.uri), pill(info.match), cell(info.subscribers, 'num'));
        return tr;
      });
    fill('subscriptions', subscriptionRows, 3, showMeta ? 'No subscriptions.' : 'No subscriptions (wamp.* hidden).');
    $('subscriptions-count').textContent = String(visible.length);
  }

  // -- call and publish ----------------------------------------------------------------------

  async function call(event) {
    event.preventDefault();
    const target = $('call-result');
    const procedure = $('call-procedure').value.trim();
    let args;
    let kwargs;
    try {
      if (!procedure) throw new Error('Procedure: a URI, such as com.example.add');
      args = parseJson($('call-args').value, 'list', 'Arguments');
      kwargs = parseJson($('call-kwargs').value, 'object', 'Keyword arguments');
    } catch (error) {
      showOutcome(target, false, error.message, []);
      return;
    }
    if (!session) return;
    const button = $('call-button');
    button.disabled = true;
    const started = performance.now();
    try {
      const result = await session.call(procedure, args, kwargs);
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
      button.disabled = false;
    }
  }

  async function publish(event) {
    event.preventDefault();
    const target = $('publish-result');
    const topic = $('publish-topic').value.trim();
    let args;
    let kwargs;
    try {
      if (!topic) throw new Error('Topic: a URI, such as com.example.news');
      args = parseJson($('publish-args').value, 'list', 'Arguments');
      kwargs = parseJson($('publish-kwargs').value, 'object', 'Keyword arguments');
    } catch (error) {
      showOutcome(target, false, error.message, []);
      return;
    }
    if (!session) return;
    const button = $('publish-button');
    button.disabled = true;
    try {
      const options = { acknowledge: true };
      if ($('publish-me').checked) options.exclude_me = false;
      const publication = await session.publish(topic, args, kwargs, options);
      const id = publication && publication.id !== undefined ? ' (publication ' + publication.id + ')' : '';
      showOutcome(target, true, 'Published to ' + topic + id, []);
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

  function trimEvents() {
    const body = $('events').tBodies[0];
    const limit = keep();
    while (body.rows.length > limit) body.deleteRow(body.rows.length - 1);
    $('events-count').textContent = String(body.rows.length);
  }

  function resetStream() {
    stream = null;
    $('stream-button').textContent = 'Subscribe';
    $('stream-stop').disabled = true;
    $('stream-status').textContent = 'Not subscribed.';
    $('stream-error').textContent = '';
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
      const tr = el('tr', 'fresh');
      tr.append(
        cell(timeText(new Date()), 'time'),
        cell((details && details.topic) || mine.topic),
        cell(json(args || [])),
        cell(kwargs && Object.keys(kwargs).length ? json(kwargs) : ''),
      );
      const body = $('events').tBodies[0];
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
    event.preventDefault();
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
  }

  // -- wiring --------------------------------------------------------------------------------

  function init() {
    const user = recall(STORE_USER);
    const lastRealm = recall(STORE_REALM);
    if (user) $('login-user').value = user;
    if (lastRealm) $('login-realm').value = lastRealm;
    $('login-form').addEventListener('submit', function (event) {
      event.preventDefault();
      const name = $('login-user').value.trim();
      const password = $('login-password').value;
      const realmName = $('login-realm').value.trim();
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
