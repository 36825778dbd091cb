"""The local turn journal: what is accepted survives the process; what is done is gone."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from core.intake.codec import message_from_dict, message_to_dict
from core.intake.journal import FileTurnJournal, JournalEntry
from core.messages import Author, Binding, InboundMessage


def entry(turn_id: str) -> JournalEntry:
    message = InboundMessage(Binding("slack", "T1"), "C1:1.2", Author("U1", "Ann",
                             frozenset({"platform_admin"})), "hello é", f"C1:{turn_id}",
                             tenant_id="acme")
    return JournalEntry(turn_id, "acme", message_to_dict(message),
                        {"kind": "slack-thread", "channel": "C1"})


async def test_an_unfinished_turn_is_found_again_after_a_restart(tmp_path: Path) -> None:
    journal, orphans = FileTurnJournal.open(tmp_path, "web")
    assert orphans == []
    await journal.accept(entry("a"))
    await journal.accept(entry("b"))
    await journal.done("a")
    await journal.unstored("b", [{"role": "user"}])
    third = entry("c")
    await journal.accept(third)
    await journal.close()  # as after a crash: nothing else was written

    again, orphans = FileTurnJournal.open(tmp_path, "web")
    found = {e.turn_id: e for e in orphans}
    assert set(found) == {"b", "c"}
    assert found["b"].state == "unstored" and found["b"].stored == [{"role": "user"}]
    assert found["c"].state == "accepted" and found["c"].address["kind"] == "slack-thread"
    restored = message_from_dict(found["c"].message)
    assert restored == message_from_dict(third.message)
    assert restored.author.roles == frozenset({"platform_admin"}) and restored.text == "hello é"
    assert {e.turn_id for e in again.pending()} == {"b", "c"}
    await again.close()


async def test_a_line_torn_by_a_crash_is_skipped(tmp_path: Path) -> None:
    journal, _ = FileTurnJournal.open(tmp_path, "web")
    await journal.accept(entry("a"))
    await journal.close()
    with (tmp_path / "web.jsonl").open("a") as handle:
        handle.write('{"op": "accept", "turn_id": "torn", "ten')
    _, orphans = FileTurnJournal.open(tmp_path, "web")
    assert [e.turn_id for e in orphans] == ["a"]


async def test_concurrent_appends_are_grouped_and_all_durable(tmp_path: Path) -> None:
    journal, _ = FileTurnJournal.open(tmp_path, "web")
    await asyncio.gather(*(journal.accept(entry(f"t{n}")) for n in range(500)))
    await journal.close()
    lines = (tmp_path / "web.jsonl").read_text().splitlines()
    assert len(lines) == 500 and all(json.loads(line)["op"] == "accept" for line in lines)


def test_a_live_process_keeps_its_journal_and_a_sibling_takes_another(
        tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path;"
         "from core.intake.journal import FileTurnJournal;"
         f"j, _ = FileTurnJournal.open(Path({str(tmp_path)!r}), 'web');"
         "print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine, _ = FileTurnJournal.open(tmp_path, "web")
        assert mine.path.name == "web-1.jsonl"
    finally:
        holder.kill()
        holder.wait()
    # The holder died: its journal is free again, and a new process takes it over.
    asyncio.run(mine.close())
    again, _ = FileTurnJournal.open(tmp_path, "web")
    assert again.path.name == "web.jsonl"
    asyncio.run(again.close())
