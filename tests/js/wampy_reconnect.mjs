// wampy.js against the router, with its automatic reconnect (run by tests/integration/test_wampy.py).
// wampy keeps counting request IDs across a reconnect: the new session's first request is not ID 1.
// Prints one JSON line per stage on stdout; the Python side drops the connection after "ready".
import { Wampy } from 'wampy';
import WebSocket from 'ws';

const [url, realm] = process.argv.slice(2);
const say = (what) => process.stdout.write(`${JSON.stringify(what)}\n`);
const timer = setTimeout(() => { say({ stage: 'timeout' }); process.exit(1); }, 15000);

let reconnected;
const reconnectedOnce = new Promise((resolve) => { reconnected = resolve; });
const wampy = new Wampy(url, {
  realm,
  ws: WebSocket,
  autoReconnect: true,
  reconnectInterval: 200,
  maxRetries: 20,
  onReconnectSuccess: () => reconnected(),
  onError: (e) => say({ stage: 'error', error: String(e) }),
});

try {
  await wampy.connect();
  await wampy.register('com.example.wampy.echo', ({ argsList }) => ({ argsList: ['echo', ...argsList] }));
  await wampy.subscribe('com.example.wampy.topic', async ({ argsList }) => {
    // an event after the reconnect: answer it by calling back, with yet another request ID
    await wampy.publish('com.example.wampy.reply', ['got', ...argsList], { acknowledge: true });
  });
  say({ stage: 'ready', session: wampy.getSessionId() });
  await reconnectedOnce;
  say({ stage: 'reconnected', session: wampy.getSessionId() });
} catch (e) {
  say({ stage: 'failed', error: String(e?.message ?? e) });
  clearTimeout(timer);
  process.exit(1);
}
process.stdin.on('data', async () => { // the Python side is done: leave cleanly
  await wampy.disconnect();
  clearTimeout(timer);
  say({ stage: 'left' });
  process.exit(0);
});
