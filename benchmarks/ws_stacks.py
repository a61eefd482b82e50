#!/usr/bin/env python3
"""Bare relay: how much server CPU a WebSocket stack spends per small message.

    .venv/bin/python benchmarks/ws_stacks.py [--duration 5] [--rounds 3] [--stacks picows,websockets,rawsocket]

For each stack a fresh echo server process (uvloop) is started on a free 127.0.0.1 port; one
client process (picows, or plain asyncio for the RawSocket baseline) keeps --window small text
messages in flight on each of --connections connections and counts the echoes in the
measurement window, while this script meters the server's utime+stime from /proc. The number
that matters is messages per server-CPU-second (the inverse of CPU per message): it does not
depend on how fast the client is, unlike messages per second.

Stacks:
  picows      picows server, on_ws_frame -> transport.send (what Cloverleaf uses)
  websockets  websockets (asyncio implementation), ``async for m in ws: await ws.send(m)``,
              compression off (WAMP peers do not negotiate permessage-deflate here either)
  rawsocket   not WebSocket: asyncio Protocol with WAMP RawSocket 4-byte framing, one write per
              message -- the floor for any framing in Python on this loop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

now_ns = time.monotonic_ns
MESSAGE = b'[36,5512315355,4429313566,{},[1700000000000000000,"hello"]]'  # an EVENT-sized text frame


# ----------------------------------------------------------------------------------------
# servers
def serve(stack: str, port: int) -> None:
    import uvloop

    async def main():
        if stack == "picows":
            from picows import WSListener, WSMsgType, ws_create_server

            class Echo(WSListener):
                def on_ws_frame(self, transport, frame):
                    mt = frame.msg_type
                    if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
                        transport.send(mt, frame.get_payload_as_bytes())
                    elif mt == WSMsgType.CLOSE:
                        transport.send_close(frame.get_close_code())
                        transport.disconnect()

            await ws_create_server(lambda request: Echo(), "127.0.0.1", port)
        elif stack == "websockets":
            from websockets.asyncio.server import serve as ws_serve
            from websockets.exceptions import ConnectionClosed

            async def handler(ws):
                try:
                    async for m in ws:
                        await ws.send(m)
                except ConnectionClosed:
                    pass

            await ws_serve(handler, "127.0.0.1", port, compression=None)
        elif stack == "rawsocket":

            class Echo(asyncio.Protocol):
                def connection_made(self, transport):
                    self.t = transport
                    self.buf = bytearray()

                def data_received(self, data):
                    buf = self.buf
                    buf += data
                    pos, n = 0, len(buf)
                    while n - pos >= 4:
                        ln = int.from_bytes(buf[pos + 1 : pos + 4], "big")
                        if n - pos - 4 < ln:
                            break
                        self.t.write(bytes(buf[pos : pos + 4 + ln]))
                        pos += 4 + ln
                    del buf[:pos]

            await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port)
        else:
            raise SystemExit(f"unknown stack {stack!r}")
        print("READY", flush=True)
        await asyncio.sleep(3600)

    uvloop.run(main())


# ----------------------------------------------------------------------------------------
# client
def client(stack: str, port: int, connections: int, window: int, t0: int, t1: int) -> None:
    import uvloop

    st = {"n": 0, "running": True}

    async def main():
        sends = []
        if stack == "rawsocket":
            frame = len(MESSAGE).to_bytes(4, "big") + MESSAGE

            class C(asyncio.Protocol):
                def connection_made(self, t):
                    self.t = t
                    self.buf = bytearray()

                def data_received(self, data):
                    buf = self.buf
                    buf += data
                    pos, n = 0, len(buf)
                    while n - pos >= 4:
                        ln = int.from_bytes(buf[pos + 1 : pos + 4], "big")
                        if n - pos - 4 < ln:
                            break
                        pos += 4 + ln
                        self.got()
                    del buf[:pos]

                def got(self):
                    t = now_ns()
                    if t0 <= t < t1:
                        st["n"] += 1
                    if st["running"]:
                        self.t.write(frame)

            loop = asyncio.get_running_loop()
            for _ in range(connections):
                tr, _p = await loop.create_connection(C, "127.0.0.1", port)
                sends.append(lambda tr=tr: tr.write(frame))
        else:
            from picows import WSListener, WSMsgType, ws_connect

            class C(WSListener):
                def on_ws_frame(self, transport, frame):
                    if frame.msg_type == WSMsgType.TEXT:
                        t = now_ns()
                        if t0 <= t < t1:
                            st["n"] += 1
                        if st["running"]:
                            transport.send(WSMsgType.TEXT, MESSAGE)

            for _ in range(connections):
                tr, _l = await ws_connect(C, f"ws://127.0.0.1:{port}/")
                sends.append(lambda tr=tr: tr.send(WSMsgType.TEXT, MESSAGE))
        for s in sends:
            for _ in range(window):
                s()
        await asyncio.sleep(max(0.0, (t1 - now_ns()) / 1e9))
        st["running"] = False
        await asyncio.sleep(0.2)
        print("RESULT " + json.dumps({"echoes": st["n"]}), flush=True)

    uvloop.run(main())


# ----------------------------------------------------------------------------------------
# orchestrator
def measure(stack: str, a) -> dict:
    from run import free_port, proc_cpu_s, proc_rss_kb, sleep_until_ns

    port = free_port(set())
    srv = subprocess.Popen([sys.executable, __file__, "_server", stack, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"{stack} server did not start: {line!r}")
        t0 = now_ns() + int(a.warmup * 1e9)
        t1 = t0 + int(a.duration * 1e9)
        cli = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "_client",
                stack,
                str(port),
                str(a.connections),
                str(a.window),
                str(t0),
                str(t1),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        sleep_until_ns(t0)
        c0, w0 = proc_cpu_s(srv.pid), now_ns()
        sleep_until_ns(t1)
        c1, w1 = proc_cpu_s(srv.pid), now_ns()
        rss = proc_rss_kb(srv.pid)
        out, _ = cli.communicate(timeout=30)
        res = json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1][7:])
    finally:
        srv.terminate()
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    n = res["echoes"]
    cpu = c1 - c0
    return {
        "stack": stack,
        "echoes": n,
        "msgs_per_s": n / a.duration,
        "server_cpu_pct": cpu / ((w1 - w0) / 1e9) * 100,
        "msgs_per_cpu_s": n / cpu if cpu else None,
        "us_per_msg": cpu / n * 1e6 if n else None,
        "server_rss_kb": rss,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stacks", default="picows,websockets,rawsocket")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--window", type=int, default=32, help="messages in flight per connection")
    a = p.parse_args(argv)
    stacks = a.stacks.split(",")
    rows: dict[str, list] = {s: [] for s in stacks}
    for rnd in range(a.rounds):
        for s in stacks if rnd % 2 == 0 else stacks[::-1]:
            r = measure(s, a)
            rows[s].append(r)
            print(
                f"[ws_stacks] round {rnd + 1} {s:<10} {r['msgs_per_s']:8.0f} msg/s  "
                f"server CPU {r['server_cpu_pct']:3.0f}%  {r['msgs_per_cpu_s'] or 0:8.0f} msg per server-CPU-s  "
                f"{r['us_per_msg'] or 0:.2f} µs/msg",
                file=sys.stderr,
                flush=True,
            )
    print()
    print(
        f"Echo of {len(MESSAGE)}-byte text messages, {a.connections} connections x {a.window} in flight, "
        f"{a.duration:.0f} s windows, median of {a.rounds} rounds, {os.cpu_count() or 1} CPUs"
    )
    print()
    print("| stack | msgs/s | server CPU % | msgs per server-CPU-second | server CPU µs/msg | vs picows |")
    print("|---|---|---|---|---|---|")
    med = {
        s: {
            k: statistics.median(r[k] for r in rows[s])
            for k in ("msgs_per_s", "server_cpu_pct", "msgs_per_cpu_s", "us_per_msg")
        }
        for s in stacks
    }
    ref = med.get("picows", {}).get("msgs_per_cpu_s")
    for s in stacks:
        m = med[s]
        print(
            "| {} | {} | {:.0f} | {} | {:.2f} | {} |".format(
                s,
                "{:,.0f}".format(m["msgs_per_s"]),
                m["server_cpu_pct"],
                "{:,.0f}".format(m["msgs_per_cpu_s"]),
                m["us_per_msg"],
                "%.2f" % (m["msgs_per_cpu_s"] / ref) if ref else "-",
            )
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_server":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
    else:
        sys.exit(main())
