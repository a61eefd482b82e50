// wampy.js against the router, with its automatic reconnect (run by tests/integration/test_wampy.py).
// wampy keeps counting request IDs across a reconnect: the new session's first request is not ID 1.
// Prints one JSON line per stage on stdout; the Python side drops the connection after "ready".
import { Wampy } from 'wampy';
import WebSocket from 'ws';
import { JsonSerializer } from 'wampy/JsonSerializer.js';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import { CborSerializer } from 'wampy/CborSerializer.js';

const [url, realm, serializerName = 'json'] = process.argv.slice(2);
const SERIALIZERS = { json: JsonSerializer, msgpack: MsgpackSerializer, cbor: CborSerializer };
const say = (what) => process.stdout.write(`${JSON.stringify(what)}\n`);
const timer = setTimeout(() => { say({ stage: 'timeout' }); process.exit(1); }, 15000);

let reconnected;
const reconnectedOnce = new Promise((resolve) => { reconnected = resolve; });
const wampy = new Wampy(url, {
  realm,
  ws: WebSocket,
  serializer: new SERIALIZERS[serializerName](),
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
  say({ stage: 'ready', session: String(wampy.getSessionId()), protocol: wampy._ws.protocol });
  await reconnectedOnce;
  say({ stage: 'reconnected', session: String(wampy.getSessionId()), protocol: wampy._ws.protocol });
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
