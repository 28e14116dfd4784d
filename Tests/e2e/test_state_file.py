"""The state file's temporary files: a save cut short by a crash leaves `.NAME.tmp-PID`
beside the state file; the next start removes those of dead processes, and only those."""

from __future__ import annotations

import os
import pathlib
import signal
import threading

from conftest import Gateway, wait_until

EXIT_TIMEOUT_S = 15.0
# Above any pid_max Linux allows (2^22), so no process can have it.
DEAD_PID = 4_194_305


def temporaries(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".state.json.tmp-"))


def kill_hard(gateway: Gateway) -> None:
    os.kill(gateway.proc.pid, signal.SIGKILL)
    gateway.proc.wait(timeout=EXIT_TIMEOUT_S)
    gateway.url = ""


def test_start_removes_stale_temporary_state_files_and_only_those(start_gateway, tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state.json"
    stale = [tmp_path / f".state.json.tmp-{DEAD_PID}", tmp_path / f".state.json.tmp-{DEAD_PID + 1}"]
    for path in stale:
        path.write_text('{"version": 1')
    # A live process's file (this test's own pid stands for another gateway mid-save), files of
    # another state file and names that only look similar stay.
    kept = [tmp_path / f".state.json.tmp-{os.getpid()}", tmp_path / f".other.json.tmp-{DEAD_PID}",
            tmp_path / ".state.json.tmp-x", tmp_path / "state.json.tmp-1"]
    for path in kept:
        path.write_text("keep")
    gateway = start_gateway("--state-file", str(state))
    assert [p.name for p in stale if p.exists()] == [], "stale temporary files were left"
    assert [p.name for p in kept if not p.exists()] == [], "files that are not stale were removed"
    assert "removed temporary state files" in gateway.stderr_text()


def test_kill_9_during_saves_leaves_no_temporary_files_behind(start_gateway, tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state.json"
    for cycle in range(12):
        gateway = start_gateway("--state-file", str(state))
        stop = threading.Event()
        saves = [0]

        def churn() -> None:
            # Creates and deletes listeners (each change a save) until the process is killed.
            while not stop.is_set():
                try:
                    created = gateway.post("/api/v1/listeners", json={"listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})
                    if created.status_code == 201:
                        gateway.delete(f"/api/v1/listeners/{created.json()['id']}")
                        saves[0] += 2
                except Exception:  # the connection dies with the process
                    return

        worker = threading.Thread(target=churn, daemon=True)
        worker.start()
        wait_until(lambda: saves[0] >= 2 + cycle % 5, message="saves before the kill")
        kill_hard(gateway)  # mid-churn: a save may be cut short
        stop.set()
        worker.join(EXIT_TIMEOUT_S)
    final = start_gateway("--state-file", str(state))
    assert temporaries(tmp_path) == [], f"left behind: {temporaries(tmp_path)}\n{final.output()}"
