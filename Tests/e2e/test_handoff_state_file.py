"""A handoff (issue 15) with `--state-file`: the successor, started with the same command
line plus `--take-over`, takes the listeners and mediators from the running gateway, not
from the file, and from the release on it alone writes the file. A change racing the
handoff is either refused (409) and nowhere, or made and both handed over and saved; a
handoff that fails leaves the predecessor the writer.

Real processes throughout: gateways, clients streaming known bytes, the state file read
back from disk, and a restart from it at the end.
"""

from __future__ import annotations

import json
import os
import threading

import requests

from conftest import connect, roundtrip, wait_until
from test_handoff import (DEADLINE_S, HEADER, FakeSuccessor, Fleet, socket_path, take_over,
                          upstream)  # noqa: F401 (fixture)
from test_reload import NotifySocket, reload, subreaper, successor_of  # noqa: F401 (fixture)


def saved(path) -> dict:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def saved_mediators(path) -> set[str]:
    return {m["name"] for m in saved(path)["mediators"]}


def saved_listeners(path) -> dict[str, str]:
    return {entry["id"]: entry["listen"] for entry in saved(path)["listeners"]}


def mediators_of(gateway) -> set[str]:
    response = gateway.get("/api/v1/mediators")
    assert response.status_code == 200, response.text
    return {m["name"] for m in response.json()["mediators"]}


def listeners_of(gateway) -> dict[str, str]:
    return {listener["id"]: listener["listen"] for listener in gateway.listeners()}


class MediatorWriter:
    """Registers mediators named w0, w1, … one after the other through `url` (a new
    connection each, as a client that does not know a handoff is going on), and records
    each answer: the status, or None when the connection broke (outcome unknown)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: dict[str, int | None] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        index = 0
        with requests.Session() as session:
            session.trust_env = False
            while not self.stopping.is_set():
                name = f"w{index}"
                index += 1
                try:
                    status = session.post(f"{self.url}/api/v1/mediators", timeout=DEADLINE_S,
                                          headers={"Connection": "close"},
                                          json={"name": name, "kind": "tcp", "address": "127.0.0.1:9"}).status_code
                except requests.RequestException:
                    status = None
                with self.lock:
                    self.answers[name] = status

    def count(self, status: int | None) -> int:
        with self.lock:
            return sum(1 for answer in self.answers.values() if answer == status)

    def stop(self) -> dict[str, int | None]:
        self.stopping.set()
        self.thread.join(timeout=DEADLINE_S)
        assert not self.thread.is_alive()
        return dict(self.answers)


def test_successor_takes_over_the_state_file_and_a_restart_restores_its_state(start_gateway, upstream, tmp_path):
    """Same command line plus `--take-over`: listeners and mediators come from the running
    gateway (sessions stream on, every byte), changes racing the handoff are made whole or
    not at all, the successor's own changes are saved, and a restart from the file brings
    back what the successor had."""
    path = socket_path(tmp_path, "h.sock")
    state = tmp_path / "state.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mediators": [{"name": "seed", "kind": "tcp", "address": "127.0.0.1:9"}]}))
    command = ["--handoff-socket", path, "--state-file", str(state), "--config", str(config)]
    old = start_gateway(*command, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    assert saved_listeners(state) == {listener["id"]: listener["listen"]}
    fleet = Fleet(listener["listen"], 10)
    writer = None
    try:
        fleet.wait_progress(64 * 1024)
        writer = MediatorWriter(old.url)
        wait_until(lambda: writer.count(201) >= 3, timeout=DEADLINE_S, message="changes made on the old process")
        # The file no longer seeds anything once it exists: a listener only in the config
        # would show up in the successor if the successor applied it.
        config.write_text(json.dumps({"listeners": [{"listen": "127.0.0.1:0", "upstream": upstream.address}]}))
        new = take_over(start_gateway, old, path, *command)
        made_by_new = writer.count(201) + 3
        wait_until(lambda: writer.count(201) >= made_by_new, timeout=DEADLINE_S,
                   message="changes made on the new process")
        answers = writer.stop()
        assert set(answers.values()) <= {201, 409, None}, answers
        print("answers during the handoff:", {s: list(answers.values()).count(s) for s in set(answers.values())})

        held = mediators_of(new)
        made = {name for name, status in answers.items() if status == 201}
        refused = {name for name, status in answers.items() if status == 409}
        assert made <= held, sorted(made - held)
        assert not refused & held, sorted(refused & held)
        # Whatever the successor holds is what the file says, the racing changes included.
        assert saved_mediators(state) == held
        assert listeners_of(new) == saved_listeners(state) == {listener["id"]: listener["listen"]}

        # The successor's own changes are saved.
        added = new.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
        assert new.delete("/api/v1/mediators/seed").status_code == 204
        assert saved_listeners(state) == {listener["id"]: listener["listen"], added["id"]: added["listen"]}
        assert saved_mediators(state) == held - {"seed"}
        fleet.wait_progress(128 * 1024)
        fleet.finish(upstream)
        with connect(added["listen"]) as client:
            assert roundtrip(client, HEADER.pack(77) + b"new") == HEADER.pack(77) + b"new"
        wait_until(lambda: new.sessions() == [], timeout=DEADLINE_S, message="every session to end")
        expected_listeners, expected_mediators = listeners_of(new), mediators_of(new)
    finally:
        if writer is not None:
            writer.stop()
        fleet.close()
    assert new.stop() == 0, new.output()
    new.url = ""
    restarted = start_gateway("--state-file", str(state), "--config", str(config))
    assert listeners_of(restarted) == expected_listeners
    assert mediators_of(restarted) == expected_mediators
    with connect(added["listen"]) as client:
        assert roundtrip(client, HEADER.pack(78) + b"again") == HEADER.pack(78) + b"again"


def test_failed_handoff_leaves_the_predecessor_the_writer(start_gateway, upstream, tmp_path):
    """While a successor holds the handoff, changes are refused and the file is not touched;
    once the successor has died the predecessor changes and saves as before."""
    path = socket_path(tmp_path, "h.sock")
    state = tmp_path / "state.json"
    old = start_gateway("--handoff-socket", path, "--state-file", str(state), "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    with connect(listener["listen"]) as client:
        assert roundtrip(client, HEADER.pack(1) + b"before") == HEADER.pack(1) + b"before"
        wait_until(lambda: len(old.sessions()) == 1, message="the session listed")
        before = state.read_bytes()
        modified = os.stat(state).st_mtime_ns
        successor = FakeSuccessor(path, sessions=1)
        try:
            answer = old.post("/api/v1/mediators", json={"name": "during", "kind": "tcp", "address": "127.0.0.1:9"})
            assert answer.status_code == 409, answer.text
            assert "handoff" in answer.json()["detail"]
            assert old.delete(f"/api/v1/listeners/{listener['id']}").status_code == 409
            assert state.read_bytes() == before and os.stat(state).st_mtime_ns == modified
        finally:
            successor.close()
        wait_until(lambda: "handoff failed before the successor acknowledged; serving every session on"
                   in old.stderr_text(), timeout=DEADLINE_S, message="the old gateway to resume")
        answer = old.post("/api/v1/mediators", json={"name": "after", "kind": "tcp", "address": "127.0.0.1:9"})
        assert answer.status_code == 201, answer.text
        assert saved_mediators(state) == {"after"}
        assert saved_listeners(state) == {listener["id"]: listener["listen"]}
        assert roundtrip(client, b"still") == b"still"


def test_a_reload_hands_the_state_file_to_the_successor(start_gateway, upstream, tmp_path, subreaper):
    """SIGHUP (`systemctl reload`) starts the successor with the same command line, so the
    file goes with the sessions: the successor's changes are saved, the old one's kept."""
    notify = NotifySocket(socket_path(tmp_path, "notify"))
    path = socket_path(tmp_path, "h.sock")
    state = tmp_path / "state.json"
    try:
        old = start_gateway("--handoff-socket", path, "--state-file", str(state), "--event-loops", "2",
                            env={"NOTIFY_SOCKET": notify.address})
        subreaper.groups.append(old.proc.pid)
        notify.wait(lambda m: m.pid == old.proc.pid and m.fields.get("READY") == "1", "READY=1 once serving")
        listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
        with connect(listener["listen"]) as client:
            assert roundtrip(client, HEADER.pack(5) + b"before") == HEADER.pack(5) + b"before"
            admin_url = old.url
            pid = reload(old.proc.pid, notify, subreaper, old.stderr_text, lambda: old.proc.wait(timeout=DEADLINE_S))
            old.url = ""
            new = successor_of(old, pid, admin_url)
            assert roundtrip(client, b"after") == b"after"
            added = new.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
            assert saved_listeners(state) == {listener["id"]: listener["listen"], added["id"]: added["listen"]}
        assert subreaper.stop(pid) == 0
    finally:
        notify.close()
