"""The local turn journal: what makes an accepted message impossible to lose.

Every message the engine accepts is written here first — before dedupe, limits, the
lock, the model or MongoDB get a chance to fail — together with where its answer goes
(``address``, which the channel's delivery provides). The entry then ends
one of three ways:

* ``done`` — answered (or deliberately refused) and stored: the entry is forgotten;
* ``unstored`` — answered but MongoDB would not take the turn: the turn's messages are
  journaled and written back when it returns (``Recovery``);
* neither, because the process died: on the next start the message is replayed and
  answered (or apologised for) into the same place.

The journal is a JSON-lines file per process under ``$SWITCHBOARD_DATA_DIR/journal``,
held with an exclusive ``flock`` so two processes never share one; a process that finds
a journal no live process holds (a crashed sibling's) recovers it too. Appends go
through one writer thread and are grouped, so the event loop never waits on the disk
and a burst costs one ``write``. Records are flushed to the operating system (which
keeps them across a crash of the process) and, with ``fsync=True``, to the disk (which
keeps them across a crash of the machine, at a cost per group). The file is compacted
when it is opened and whenever everything in it is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from observability import metrics

log = logging.getLogger("switchboard.journal")

State = Literal["accepted", "unstored"]


@dataclass(slots=True)
class JournalEntry:
    """One accepted turn that is not finished yet."""

    turn_id: str
    tenant: str
    message: dict[str, Any]
    address: dict[str, Any] = field(default_factory=dict)
    state: State = "accepted"
    stored: list[dict[str, Any]] = field(default_factory=list)
    """The turn's messages (and usage), once answered but not yet in MongoDB."""


class TurnJournal(Protocol):
    async def accept(self, entry: JournalEntry) -> None: ...

    async def unstored(self, turn_id: str, stored: list[dict[str, Any]]) -> None: ...

    async def done(self, turn_id: str) -> None: ...

    def pending(self) -> list[JournalEntry]:
        """Entries not finished, oldest first."""
        ...

    async def close(self) -> None: ...


class MemoryTurnJournal:
    """The journal of a process that keeps nothing across restarts (tests, benchmarks).
    It still tracks unstored turns so they are written back after an outage."""

    def __init__(self) -> None:
        self._entries: dict[str, JournalEntry] = {}

    async def accept(self, entry: JournalEntry) -> None:
        self._entries[entry.turn_id] = entry
        metrics.JOURNALED.set(len(self._entries))

    async def unstored(self, turn_id: str, stored: list[dict[str, Any]]) -> None:
        entry = self._entries.get(turn_id)
        if entry is not None:
            entry.state, entry.stored = "unstored", stored

    async def done(self, turn_id: str) -> None:
        self._entries.pop(turn_id, None)
        metrics.JOURNALED.set(len(self._entries))

    def pending(self) -> list[JournalEntry]:
        return list(self._entries.values())

    async def close(self) -> None:
        return None


def _replay(lines: Iterator[str]) -> dict[str, JournalEntry]:
    entries: dict[str, JournalEntry] = {}
    for line in lines:
        try:
            record = json.loads(line)
            op, turn_id = record["op"], record["turn_id"]
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a crash mid-write
        if op == "accept":
            entries[turn_id] = JournalEntry(turn_id, record["tenant"], record["message"],
                                            record.get("address") or {})
        elif op == "unstored" and turn_id in entries:
            entries[turn_id].state = "unstored"
            entries[turn_id].stored = record.get("stored") or []
        elif op == "done":
            entries.pop(turn_id, None)
    return entries


def _record(entry: JournalEntry) -> dict[str, Any]:
    record: dict[str, Any] = {"op": "accept", "turn_id": entry.turn_id,
                              "tenant": entry.tenant, "message": entry.message,
                              "address": entry.address}
    return record


class FileTurnJournal:
    def __init__(self, path: Path, handle: IO[str], entries: dict[str, JournalEntry],
                 *, fsync: bool = False) -> None:
        self.path = path
        self._handle = handle
        self._entries = entries
        self._fsync = fsync
        self._queue: list[tuple[str, asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None
        metrics.JOURNALED.set(len(entries))

    @classmethod
    def open(cls, directory: Path, process: str, *, fsync: bool = False
             ) -> tuple[FileTurnJournal, list[JournalEntry]]:
        """This process's journal, and the unfinished entries of any journal of the same
        kind of process that no live process holds (its own from before a crash, or a
        crashed sibling's). Blocking: call it off the event loop."""
        directory.mkdir(parents=True, exist_ok=True)
        orphans: list[JournalEntry] = []
        mine: tuple[Path, IO[str]] | None = None
        for index in range(64):
            path = directory / (f"{process}.jsonl" if index == 0 else
                                f"{process}-{index}.jsonl")
            handle = path.open("a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue  # a live process holds it
            handle.seek(0)
            found = _replay(iter(handle.read().splitlines()))
            if mine is None:
                mine = (path, handle)
                orphans.extend(found.values())
                continue
            orphans.extend(found.values())
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            if not path.stat().st_size:
                with contextlib.suppress(OSError):
                    path.unlink()
        if mine is None:
            raise RuntimeError(f"no free journal slot under {directory}")
        own_path, own = mine
        own.seek(0)
        own.truncate(0)
        entries = {e.turn_id: e for e in orphans}
        for entry in orphans:
            own.write(json.dumps(_record(entry)) + "\n")
            if entry.state == "unstored":
                own.write(json.dumps({"op": "unstored", "turn_id": entry.turn_id,
                                      "stored": entry.stored}) + "\n")
        own.flush()
        if orphans:
            log.warning("journal %s: %d turns were not finished before the last stop; "
                        "they will be answered or written back now", own_path.name,
                        len(orphans))
        return cls(own_path, own, entries, fsync=fsync), orphans

    async def _append(self, record: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((json.dumps(record, default=str) + "\n", future))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await asyncio.to_thread(self._write, "".join(line for line, _ in batch))
            except OSError as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write(self, text: str) -> None:
        self._handle.write(text)
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())
        if not self._entries and self._handle.tell() > 1 << 20:
            self._handle.seek(0)
            self._handle.truncate(0)

    async def accept(self, entry: JournalEntry) -> None:
        self._entries[entry.turn_id] = entry
        metrics.JOURNALED.set(len(self._entries))
        await self._append(_record(entry))

    async def unstored(self, turn_id: str, stored: list[dict[str, Any]]) -> None:
        entry = self._entries.get(turn_id)
        if entry is None:
            return
        entry.state, entry.stored = "unstored", stored
        await self._append({"op": "unstored", "turn_id": turn_id, "stored": stored})

    async def done(self, turn_id: str) -> None:
        if self._entries.pop(turn_id, None) is None:
            return
        metrics.JOURNALED.set(len(self._entries))
        await self._append({"op": "done", "turn_id": turn_id})

    def pending(self) -> list[JournalEntry]:
        return list(self._entries.values())

    async def close(self) -> None:
        if self._writing is not None:
            await self._writing
        await asyncio.to_thread(self._handle.close)
