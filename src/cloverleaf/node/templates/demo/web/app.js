// The demo page: one WAMP session (AutobahnJS) to the node that served this page.
'use strict';

const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const connection = new autobahn.Connection({
  url: `${scheme}//${location.host}/ws`,
  realm: 'realm1',
  max_retries: -1, // keep reconnecting when the node restarts
});

const statusText = document.getElementById('status');
const counterText = document.getElementById('counter');
const eventsText = document.getElementById('events');
const addButton = document.getElementById('add');
const sumText = document.getElementById('sum');
let eventsReceived = 0;

connection.onopen = (session) => {
  statusText.textContent = `joined ${session.realm} as session ${session.id}`;
  statusText.className = 'ok';
  addButton.disabled = false;

  session.subscribe('com.example.counter', ([value]) => {
    counterText.textContent = String(value);
    eventsText.textContent = String(++eventsReceived);
  });

  const form = document.getElementById('add-form');
  let latest = 0; // answers can overtake each other: show the newest call's
  const add = () => {
    const a = document.getElementById('a').valueAsNumber;
    const b = document.getElementById('b').valueAsNumber;
    if (Number.isNaN(a) || Number.isNaN(b)) {
      sumText.textContent = 'enter two numbers';
      return;
    }
    const call = ++latest;
    session.call('com.example.add2', [a, b]).then(
      (result) => { if (call === latest) sumText.textContent = String(result); },
      (error) => {
        if (call === latest) sumText.textContent = `error: ${error.args[0] || error.error}`;
      },
    );
  };
  form.onsubmit = (event) => { event.preventDefault(); add(); };
  form.oninput = add;
  add();
};

connection.onclose = (reason, details) => {
  // A node that stops says GOODBYE (wamp.close.system_shutdown) to every session, and AutobahnJS
  // takes a GOODBYE as the end of the connection: it does not retry by itself. The node is coming
  // back (a restart, a deploy), so open again; AutobahnJS then retries until it is up.
  const restarting = !details.will_retry && details.reason === 'wamp.close.system_shutdown';
  statusText.textContent = restarting ? 'the node is restarting, reconnecting…'
    : `${reason}${details.will_retry ? ', reconnecting…' : ''}`;
  statusText.className = 'error';
  addButton.disabled = true;
  if (restarting) {
    setTimeout(() => connection.open(), 500);
  }
};

connection.open();
