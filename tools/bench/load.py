"""The benchmark's load client: C chat clients in one room sending messages that carry their
send time, each client recording every message it receives.

Messages are numbered 0..N-1 and message k is sent by client k mod C: paced, at
start + k / rate (an even offered load whatever C is), or in a burst, every client sending
its share back to back. Runs as its own process (`python -m tools.bench.load SPEC_JSON`,
one asyncio loop) so the benchmark's own bookkeeping never steals its time; prints one
JSON line.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from dataclasses import asdict, dataclass

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

CONNECTS_AT_ONCE = 20  # daphne accepts a crowd faster a few at a time
START_DELAY = 0.3  # seconds between the last socket opening and the first send


@dataclass(frozen=True)
class LoadSpec:
    url: str  # ws://host:port/ws/chat/<room>/ (wss:// behind nginx)
    origin: str
    clients: int
    messages: int  # in all, over all clients
    rate: float | None  # messages per second over all clients; None: a burst
    idle_timeout: float = 3.0  # seconds without a delivery that end the wait for more
    cafile: str | None = None  # wss://: the server's self-signed certificate, trusted


@dataclass
class Client:
    """One socket's record: a flag per message number, set when that message arrived."""

    index: int
    seen: bytearray
    socket: ClientConnection | None = None
    sent: int = 0
    unique: int = 0
    duplicates: int = 0
    errors: int = 0  # {"error": ...} frames: the server refused a message
    closed_by_server: int | None = None  # the close code, when the server closed first


class MachineCPU:
    """How many of the machine's cores were busy from a start to the last mark: every
    process on it (servers, nginx, Redis, this client, and whatever else shares the
    machine), and how much the hypervisor gave to other machines (steal)."""

    BUSY = ("user", "nice", "system", "irq", "softirq")  # guest time is inside user

    def __init__(self):
        self.start()

    def start(self) -> None:
        self.first = self.last = (time.monotonic(), psutil.cpu_times())

    def mark(self) -> None:
        self.last = (time.monotonic(), psutil.cpu_times())

    def cores(self, fields: tuple[str, ...]) -> float | None:
        (started, before), (ended, after) = self.first, self.last
        if ended <= started:
            return None
        spent = sum(getattr(after, f, 0) - getattr(before, f, 0) for f in fields)
        return round(spent / (ended - started), 2)


class Run:
    def __init__(self, spec: LoadSpec):
        self.spec = spec
        self.clients = [
            Client(i, bytearray(spec.messages)) for i in range(spec.clients)
        ]
        self.latencies: list[float] = []
        self.send_lag = 0.0  # how late the most late paced send was
        self.delivered = 0
        self.first_send = self.last_send = self.last_delivery = 0.0
        self.connect_failures: list[str] = []
        self.closing = False  # set once we close the sockets ourselves
        self.machine = MachineCPU()  # from the first send to the last delivery seen

    # -- sockets ------------------------------------------------------------------------
    async def open_all(self) -> None:
        limit = asyncio.Semaphore(CONNECTS_AT_ONCE)
        tls = (
            ssl.create_default_context(cafile=self.spec.cafile)
            if self.spec.cafile
            else None
        )

        async def open_one(client: Client) -> None:
            async with limit:
                try:
                    client.socket = await connect(
                        self.spec.url,
                        origin=self.spec.origin,
                        ssl=tls,
                        open_timeout=30,
                        max_size=None,
                        compression=None,  # daphne does not deflate either
                        ping_interval=None,  # measure the chat, not keepalives
                    )
                except (InvalidHandshake, OSError, TimeoutError) as error:
                    self.connect_failures.append(f"{type(error).__name__}: {error}")

        await asyncio.gather(*(open_one(client) for client in self.clients))

    async def close_all(self) -> None:
        self.closing = True
        sockets = [c.socket for c in self.clients if c.socket is not None]
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)

    # -- traffic ------------------------------------------------------------------------
    async def send_from(self, client: Client) -> None:
        """Send messages client.index, client.index + C, ... at their times."""
        rate = self.spec.rate
        for number in range(client.index, self.spec.messages, self.spec.clients):
            if rate:
                delay = self.first_send + number / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self.send_lag = max(self.send_lag, -delay)
            frame = f'{{"message": "{number} {time.monotonic():.6f}"}}'
            try:
                await client.socket.send(frame)
            except ConnectionClosed:
                return
            client.sent += 1
        self.last_send = max(self.last_send, time.monotonic())

    async def receive_into(self, client: Client) -> None:
        """Record every frame until the socket closes."""
        try:
            async for frame in client.socket:
                now = time.monotonic()
                data = json.loads(frame)
                message = data.get("message")
                if message is None:  # not a chat message
                    if "error" in data:  # others (stage 8's {"presence": ...}) are fine
                        client.errors += 1
                    continue
                number, sent_at = message.split(" ")
                number = int(number)
                if client.seen[number]:
                    client.duplicates += 1
                    continue
                client.seen[number] = 1
                client.unique += 1
                self.delivered += 1
                self.latencies.append(now - float(sent_at))
                self.last_delivery = now
        except ConnectionClosed:
            pass
        if not self.closing:  # the server closed it, or the connection broke
            client.closed_by_server = client.socket.close_code or 1006

    async def wait_for_deliveries(self, expected: int) -> None:
        """Until every message reached every client, or deliveries stop coming."""
        last_count, last_progress = -1, time.monotonic()
        while self.delivered < expected:
            if self.delivered != last_count:
                last_count, last_progress = self.delivered, time.monotonic()
                self.machine.mark()
            elif time.monotonic() - last_progress > self.spec.idle_timeout:
                return
            await asyncio.sleep(0.05)
        self.machine.mark()  # everything arrived

    async def run(self) -> dict:
        await self.open_all()
        live = [c for c in self.clients if c.socket is not None]
        receivers = [asyncio.create_task(self.receive_into(c)) for c in live]
        await asyncio.sleep(
            START_DELAY
        )  # let the server settle after the connection storm
        cpu_before = time.process_time()
        self.machine.start()
        self.first_send = time.monotonic()
        await asyncio.gather(*(self.send_from(c) for c in live))
        sent = sum(c.sent for c in live)
        await self.wait_for_deliveries(sent * len(self.clients))
        cpu = time.process_time() - cpu_before
        await self.close_all()
        await asyncio.gather(*receivers)
        return self.summary(sent, cpu)

    # -- results ------------------------------------------------------------------------
    def summary(self, sent: int, cpu: float) -> dict:
        recipients = len(self.clients)
        expected = sent * recipients
        window = max(self.last_delivery - self.first_send, 1e-9)
        rate = self.spec.rate
        return {
            "clients": recipients,
            "messages": self.spec.messages,
            "rate": rate,
            "offered_per_s": round(rate * recipients, 1) if rate else None,
            "sent": sent,
            "expected": expected,
            "delivered": self.delivered,
            "lost": expected - self.delivered,
            "clients_missing_messages": sum(c.unique < sent for c in self.clients),
            "duplicates": sum(c.duplicates for c in self.clients),
            "error_frames": sum(c.errors for c in self.clients),
            "abnormal_closes": len(self.connect_failures)
            + sum(c.closed_by_server is not None for c in self.clients),
            "close_codes": sorted(
                {c.closed_by_server for c in self.clients if c.closed_by_server}
            ),
            "connect_failures": self.connect_failures[:3],
            "deliveries_per_s": round(self.delivered / window, 1),
            "seconds": round(window, 3),
            **percentiles_ms(self.latencies),
            "send_lag_ms": round(self.send_lag * 1e3, 1),
            "client_cpu_s": round(cpu, 3),
            "machine_busy_cores": self.machine.cores(MachineCPU.BUSY),
            "machine_steal_cores": self.machine.cores(("steal",)),
        }


def percentiles_ms(seconds: list[float]) -> dict:
    """p50, p95, p99 and max of `seconds`, in milliseconds."""
    ordered = sorted(seconds)

    def at(fraction: float) -> float | None:
        if not ordered:
            return None
        return round(
            ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e3, 1
        )

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1)}


def spec_from_json(text: str) -> LoadSpec:
    return LoadSpec(**json.loads(text))


def spec_to_json(spec: LoadSpec) -> str:
    return json.dumps(asdict(spec))


def main(argv: list[str]) -> int:
    result = asyncio.run(Run(spec_from_json(argv[0])).run())
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
