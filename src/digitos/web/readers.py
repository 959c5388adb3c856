"""Where `digitos serve` reads images: in separate processes, one interpreter each.

Reading a canvas is a few milliseconds of many small NumPy and PyTorch calls. Threads of one
interpreter hand its lock back and forth around each of them: two threads reading at once
spent 9.2 ms of CPU per canvas against 6.4 ms for one alone. So the server's own process
only speaks HTTP, and each reading process loads its own copy of the model once, then reads
the images it is handed through a pipe, one at a time. The event loop waits on the pipes
itself: no thread sits between a request and its reading.

A reading process that dies (killed, out of memory) costs the request it held a 503, and a
fresh process takes its place. Each one leaves when the server closes its pipe, or exits.
`answer`, what one reading sends back, lives here too: a reading process needs nothing of
the web server.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections import deque
from multiprocessing.connection import Connection

import torch

from ..errors import DigitosError
from ..predict import DigitReading, Reader, load_reader, read_image, reading_json

LARGE = 256 * 1024  # bytes: a larger image is handed over from a thread, not the event loop


class ReaderGone(DigitosError):
    """A reading process stopped while it held this request."""


def answer(reader: Reader, data: bytes, name: str, explain: bool = True) -> dict:
    """Everything the page shows: the number and each digit with its box and, when asked to
    explain, the 28x28 the model saw and the saliency map (for the first digit at the top
    level, for each in `digits`)."""
    result = read_image(reader, data, name)
    out = reading_json(name, result)
    shown = result.digits or [result.whole]
    views = [_views(reader, seen) if explain else {} for seen in shown]
    for d, view in zip(out["digits"], views, strict=False):  # no digits: the whole is shown
        d |= view
    reading = shown[0].reading
    return out | views[0] | {
        "top": [{"digit": d, "probability": round(p, 6)} for d, p in reading.top(3)],
        "polarity": result.polarity,
        "size": list(result.size),
    }


def _views(reader: Reader, seen: DigitReading) -> dict:
    return {"preprocessed": seen.pixels.flatten().tolist(),
            "saliency": [round(float(v), 4) for v in reader.saliency(seen.pixels).flatten()]}


def fewer_malloc_arenas() -> None:
    """glibc gives threads their own heaps ("arenas") and seldom hands them back: with uploads
    read on many threads, a server's RSS grew by 300 MB under load. Two arenas are enough."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _read_forever(conn: Connection, source: dict) -> None:
    """A reading process: load the model, say so, then answer each image sent."""
    # Ctrl+C and a service manager's SIGTERM reach the whole process group: stopping is the
    # server's to do. It closes the pipe once its requests are answered, and this loop ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)  # the processes are the parallelism
    fewer_malloc_arenas()
    reader = load_reader(**source)
    try:
        conn.send("ready")
    except OSError:
        return  # the server stopped while this process was starting
    while True:
        try:
            data, name, explain = conn.recv()
        except (EOFError, OSError):
            return  # the server closed the pipe, or is gone
        try:
            reply = (True, answer(reader, data, name, explain))
        except Exception as e:  # the server answers for it (400, 422, or a logged 500)
            reply = (False, e)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as e:  # an exception that does not pickle: its words do
            conn.send((False, DigitosError(f"{type(e).__name__}: {e}")))


class _Process:
    """One reading process, the pipe to it, and the answer it owes."""

    def __init__(self, source: dict):
        ctx = multiprocessing.get_context("spawn")  # a fork of a threaded process may hang
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_read_forever, args=(child, source), daemon=True,
                                   name="digitos-reader")
        self.process.start()
        child.close()
        self.reply: asyncio.Future | None = None  # for the image it is reading
        self.gone = False

    def wait_ready(self) -> None:
        try:
            if self.conn.recv() == "ready":
                return
        except (EOFError, OSError):
            pass
        raise DigitosError(f"a reading process failed to start (exit code {self.process.exitcode})")


class ReadingProcesses:
    """`count` reading processes, each holding the model that `source` names (the keyword
    arguments of `load_reader`). Made before the event loop runs; used from it.

    A process is handed one image at a time. (Handing it the next while it reads, so that it
    never waits for the event loop, was tried: an image queued behind a slow one could not
    go to a process that came free first, and the slowest answers came slower.)
    """

    def __init__(self, source: dict, count: int):
        self.source = dict(source)
        self.processes = [_Process(self.source) for _ in range(count)]
        for p in self.processes:  # they load in parallel; wait for all
            p.wait_ready()
        self._free: list[_Process] = []  # the processes with no image to read
        self._waiting: deque[asyncio.Future] = deque()  # requests waiting for one, in order
        self._listening = False
        self._replacing: set[asyncio.Task] = set()

    def _listen(self, p: _Process) -> None:
        asyncio.get_running_loop().add_reader(p.conn.fileno(), self._reply, p)
        self._give(p)

    async def _take(self) -> _Process:
        """The next free process, first come first served. (asyncio.Queue lets a request that
        arrives as a process comes free take it before the one woken for it, which then goes
        to the back: under load, the slowest answers came slower.)"""
        if not self._listening:  # the first request, in the server's own event loop
            self._listening = True
            for p in self.processes:
                self._listen(p)
        if self._free:  # (a process is only ever left free when no request waits)
            return self._free.pop()
        handed = asyncio.get_running_loop().create_future()
        self._waiting.append(handed)
        try:
            return await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():  # handed over, then given up
                self._give(handed.result())
            raise

    def _give(self, p: _Process) -> None:
        """A process came free: to the longest-waiting request, or to the free list."""
        if p.gone:
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():  # not given up
                waiter.set_result(p)
                return
        self._free.append(p)

    async def answer(self, data: bytes, name: str, explain: bool) -> dict:
        """`answer` for one image, read in the next free process. A request that gives
        up (its time limit, the server stopping) leaves its reading to finish unheard."""
        p = await self._take()
        # The process is free again only once it has answered, even if this request gives
        # up first: no other image is sent to it while it reads, or while this one is sent.
        p.reply = reply = asyncio.get_running_loop().create_future()
        try:
            if len(data) > LARGE:
                await asyncio.to_thread(p.conn.send, (data, name, explain))
            else:
                p.conn.send((data, name, explain))  # the pipe's buffer takes it at once
        except OSError:
            self._lost(p)
        ok, value = await reply
        if not ok:
            raise value
        return value

    def _reply(self, p: _Process) -> None:
        """The event loop's callback when a process's pipe has an answer to read."""
        try:
            reply = p.conn.recv()
        except (EOFError, OSError):
            self._lost(p)
            return
        if p.reply is not None and not p.reply.done():
            p.reply.set_result(reply)
        p.reply = None
        self._give(p)

    def _lost(self, p: _Process) -> None:
        """A process died: its requests get a 503, and a fresh process takes its place."""
        if p.gone:
            return
        p.gone = True
        if p in self._free:
            self._free.remove(p)
        asyncio.get_running_loop().remove_reader(p.conn.fileno())
        p.conn.close()
        if p.reply is not None and not p.reply.done():
            p.reply.set_result((False, ReaderGone("a reading process stopped; try again")))
        task = asyncio.ensure_future(self._replace(p))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace(self, gone: _Process) -> None:
        def start() -> _Process:
            fresh = _Process(self.source)
            fresh.wait_ready()
            return fresh

        fresh = await asyncio.to_thread(start)
        self.processes[self.processes.index(gone)] = fresh
        self._listen(fresh)

    def close(self) -> None:
        """Close the pipes: each process ends after the reading it holds (at most a second:
        every image's work is bounded)."""
        for p in self.processes:
            if self._listening and not p.gone:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(p.conn.fileno())
            p.conn.close()
        for p in self.processes:
            p.process.join(timeout=2)
            if p.process.is_alive():
                p.process.kill()
