"""`systemctl reload splicegate` (issue 15): SIGHUP makes a gateway started with
`--handoff-socket` start its own successor (the executable at the path it was started by,
its arguments plus `--take-over`), which takes every session over; the service manager
hears it all through `$NOTIFY_SOCKET` (sd_notify: READY=1, RELOADING=1, MAINPID=).

Everything is real: gateway processes, the test playing systemd's notification socket (a
Unix datagram socket that learns each sender's pid from SO_PASSCRED, as systemd does), TCP
clients streaming known bytes through the gateway while it reloads, and a successor
replaced by a script that fails. The successor is the old process's child: when the old
process exits it is re-parented to the test, which is a child subreaper while it runs, so
that the test can stop it and read its exit status.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import types

import pytest

import conftest
from conftest import TOKEN, wait_until
from test_handoff import DEADLINE_S, Fleet, HashingEcho, first_event, socket_path

PR_SET_CHILD_SUBREAPER = 36


class Notification:
    """One sd_notify message: the sender's pid (from its credentials) and its fields."""

    def __init__(self, pid: int, text: str) -> None:
        self.pid = pid
        self.text = text
        self.fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def __repr__(self) -> str:
        return f"<pid {self.pid}: {self.text!r}>"


class NotifySocket:
    """The service manager's notification socket: a Unix datagram socket at a path, or at
    an abstract address (`@name`), collecting every message with its sender's pid."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[Notification] = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        credentials = struct.calcsize("iII")
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(credentials))
            except OSError:
                return
            if self.closed:
                return
            pid = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:credentials])[0]
            with self.lock:
                self.messages.append(Notification(pid, data.decode("utf-8", "replace")))

    def snapshot(self) -> list[Notification]:
        with self.lock:
            return list(self.messages)

    def wait(self, predicate, message: str, after: int = 0) -> Notification:
        """The first message (from index `after` on) that `predicate` accepts."""
        return wait_until(lambda: next((m for m in self.snapshot()[after:] if predicate(m)), None),
                          timeout=DEADLINE_S, message=f"a notification: {message} (got {self.snapshot()})")

    def close(self) -> None:
        self.closed = True
        self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=DEADLINE_S)
        self.sock.close()


class Adopted:
    """Successors the test adopts (see `subreaper`), and the process groups they run in
    (the gateways' own: started with start_new_session, a successor stays in its
    predecessor's group), so that none outlives a test that failed midway."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.groups: list[int] = []

    def exit_code(self, pid: int) -> int:
        """Waits for the adopted `pid` to exit; its exit code."""
        # The (pid, status) pair: a status of 0 alone would read as "not yet".
        _, status = wait_until(lambda: (lambda r: r if r[0] == pid else None)(os.waitpid(pid, os.WNOHANG)),
                               timeout=DEADLINE_S, message=f"successor {pid} to exit")
        return os.waitstatus_to_exitcode(status)

    def stop(self, pid: int) -> int:
        """SIGTERM to an adopted successor; its exit code."""
        os.kill(pid, signal.SIGTERM)
        return self.exit_code(pid)


@pytest.fixture
def subreaper():
    """Makes the test process a child subreaper while the test runs: a reload's successor,
    orphaned when the gateway that started it exits, becomes the test's child (instead of
    init's), so that the test can wait for it and read its exit status."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())
    adopted = Adopted()
    yield adopted
    try:
        for group in adopted.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        for pid in adopted.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def successor_of(old: conftest.Gateway, pid: int, url: str) -> conftest.Gateway:
    """The admin client of `old`, pointed at the same admin URL, standing for `pid` (the
    process that serves it now): what a test needs of a gateway it did not start."""
    new = copy.copy(old)
    new.url = url
    new.proc = types.SimpleNamespace(pid=pid)
    return new


def listening_inode(port: int) -> str:
    """The inode of the socket listening on TCP `port` (IPv4)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def holds_socket(pid: int, inode: str) -> bool:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                return True
    return False


def log_line(gateway: conftest.Gateway, message: str, after: int = 0) -> str:
    """The first line (from offset `after` of the gateway's stderr) that carries `message`,
    once there is one; its metadata (`key=value`) come before the message."""
    return wait_until(lambda: next((line for line in gateway.stderr_text()[after:].splitlines() if message in line), None),
                      timeout=DEADLINE_S, message=f"{message!r} in the log")


def reload(pid: int, notify: NotifySocket, adopted: Adopted, log, exit_code) -> int:
    """SIGHUP to the gateway `pid`; waits until its successor has announced itself
    (MAINPID= and READY=1) and `pid` has exited 0 (`exit_code()` waits for that); `log()`
    is the stderr the processes share. Returns the successor's pid."""
    start, logged = len(notify.snapshot()), len(log())
    os.kill(pid, signal.SIGHUP)
    reloading = notify.wait(lambda m: m.pid == pid and m.fields.get("RELOADING") == "1",
                            "RELOADING=1 from the old process", after=start)
    assert int(reloading.fields["MONOTONIC_USEC"]) > 0, reloading
    announced = notify.wait(lambda m: m.pid != pid and "MAINPID" in m.fields, "MAINPID= from the successor",
                            after=start)
    successor = int(announced.fields["MAINPID"])
    adopted.pids.append(successor)
    assert announced.pid == successor and announced.fields.get("READY") == "1", announced
    assert exit_code() == 0, log()[logged:]
    assert "handoff: the successor acknowledged; exiting" in log()[logged:]
    messages = notify.snapshot()[start:]
    # The old process named its successor too (before it exited), and nothing said
    # READY=1 between RELOADING=1 and the successor's READY=1.
    assert any(m.pid == pid and m.fields.get("MAINPID") == str(successor) for m in messages), messages
    assert [m.pid for m in messages if m.fields.get("READY") == "1"] == [successor], messages
    return successor


def test_sighup_hands_the_sessions_to_a_successor_the_service_manager_follows(
        start_gateway, tmp_path, subreaper):
    upstream = HashingEcho()
    notify = NotifySocket(socket_path(tmp_path, "notify"))
    path = socket_path(tmp_path, "handoff.sock")
    fleet = None
    successors: list[int] = []
    try:
        # A config file as in the documented unit: its listener is created once, by the
        # first process (a successor, started with the same --config, takes it over), and
        # its admin settings hold in every process.
        token = tmp_path / "token"
        token.write_text(TOKEN + "\n")
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"listeners": [{"listen": "127.0.0.1:0", "upstream": upstream.address}],
                                      "admin": {"token_file": str(token)}}))
        old = start_gateway("--config", str(config), "--handoff-socket", path, "--event-loops", "2",
                            env={"NOTIFY_SOCKET": notify.address})
        old.token = TOKEN
        subreaper.groups.append(old.proc.pid)
        notify.wait(lambda m: m.pid == old.proc.pid and m.fields.get("READY") == "1", "READY=1 once serving")
        [listener] = old.listeners()
        fleet = Fleet(listener["listen"], 20)
        fleet.wait_progress(64 * 1024)
        ids = {s["client"]: s["id"] for s in old.sessions()}
        assert len(ids) == 20
        admin_url, admin_port = old.url, old.port

        successors.append(reload(old.proc.pid, notify, subreaper, old.stderr_text,
                                 lambda: old.proc.wait(timeout=DEADLINE_S)))
        # Exited as it should: the fixture must not count it as a gateway that died.
        old.url = ""
        new = successor_of(old, successors[0], admin_url)
        # A session of its own: the old process's terminal or group hangup is not its.
        assert os.getsid(successors[0]) == successors[0]
        # The admin API answers from the successor: it holds the admin socket (an event
        # stream is read only from the last one: a stream still open refuses a handoff).
        assert holds_socket(successors[0], listening_inode(admin_port))
        assert new.get("/api/v1/health").status_code == 200
        assert new.get("/api/v1/listeners", auth=False).status_code == 401
        assert [(l["id"], l["listen"]) for l in new.listeners()] == [(listener["id"], listener["listen"])]
        fleet.wait_progress(128 * 1024)
        assert {s["client"]: s["id"] for s in new.sessions()} == ids

        # The successor reloads in turn (its own arguments carry --take-over, replaced).
        successors.append(reload(successors[0], notify, subreaper, old.stderr_text,
                                 lambda: subreaper.exit_code(successors[0])))
        third = successor_of(old, successors[1], admin_url)
        assert holds_socket(successors[1], listening_inode(admin_port))
        fleet.wait_progress(128 * 1024)
        assert {s["client"]: s["id"] for s in third.sessions()} == ids
        event = first_event(third)
        assert event["type"] == "gateway.handoff" and event["from_pid"] == successors[0], event
        assert event["sessions"] == 20, event
        fleet.finish(upstream)
        wait_until(lambda: third.sessions() == [], timeout=DEADLINE_S, message="every session to end")
        assert subreaper.stop(successors[1]) == 0
    finally:
        if fleet:
            fleet.close()
        upstream.close()
        notify.close()


def test_sighup_without_a_handoff_socket_is_refused_and_the_sessions_go_on(start_gateway, tmp_path):
    """Without --handoff-socket a reload has nowhere to put the sessions: SIGHUP is logged
    and ignored, not its default action (the process ending, every session cut)."""
    upstream = HashingEcho()
    notify = NotifySocket(socket_path(tmp_path, "notify"))
    fleet = None
    try:
        gateway = start_gateway(env={"NOTIFY_SOCKET": notify.address})
        notify.wait(lambda m: m.pid == gateway.proc.pid and m.fields.get("READY") == "1", "READY=1 once serving")
        listener = gateway.post("/api/v1/listeners", json={"listen": "127.0.0.1:0", "upstream": upstream.address}).json()
        fleet = Fleet(listener["listen"], 4)
        fleet.wait_progress(64 * 1024)
        logged, start = len(gateway.stderr_text()), len(notify.snapshot())
        os.kill(gateway.proc.pid, signal.SIGHUP)
        log_line(gateway, "SIGHUP ignored: a reload hands the sessions to a new process, which needs --handoff-socket",
                 after=logged)
        assert gateway.proc.poll() is None
        fleet.wait_progress(128 * 1024)
        assert len(gateway.sessions()) == 4
        assert not any("RELOADING" in m.fields for m in notify.snapshot()[start:])
        fleet.finish(upstream)
        wait_until(lambda: gateway.sessions() == [], timeout=DEADLINE_S, message="every session to end")
    finally:
        if fleet:
            fleet.close()
        upstream.close()
        notify.close()


def test_sigterm_tells_the_service_manager_it_is_stopping(start_gateway, tmp_path):
    """SIGTERM: `STOPPING=1` while the gateway drains, and no `READY=1` after it."""
    notify = NotifySocket(socket_path(tmp_path, "notify"))
    try:
        gateway = start_gateway(env={"NOTIFY_SOCKET": notify.address})
        pid = gateway.proc.pid
        notify.wait(lambda m: m.pid == pid and m.fields.get("READY") == "1", "READY=1 once serving")
        start = len(notify.snapshot())
        gateway.proc.send_signal(signal.SIGTERM)
        notify.wait(lambda m: m.pid == pid and m.fields.get("STOPPING") == "1", "STOPPING=1", after=start)
        assert gateway.proc.wait(timeout=DEADLINE_S) == 0
        gateway.url = ""  # exited as it should: not a gateway that died
        assert not any(m.fields.get("READY") == "1" for m in notify.snapshot()[start:])
    finally:
        notify.close()


STAND_IN = """#!/bin/sh
# A successor that fails: says it started (with what), waits for the test, exits 1.
echo "stand-in successor $$ started with: $*" >&2
read line < {fifo}
exit 1
"""


def install(program: pathlib.Path, make) -> None:
    """Replaces `program` at once (rename over it), as a package upgrade does: `make(path)`
    writes the new file at a temporary path first."""
    staged = program.with_name(program.name + ".new")
    make(staged)
    os.replace(staged, program)


def test_failed_reload_serves_on_and_a_later_one_works(start_gateway, tmp_path, subreaper, monkeypatch):
    """The gateway is started from a path of the test's (a symlink to the build); that path
    is then replaced by a script that fails, then by a file that cannot be executed, and at
    last by the build again, as an upgrade would replace it."""
    built = conftest.BIN
    program = tmp_path / "bin" / "splicegate"
    program.parent.mkdir()
    program.symlink_to(built)
    monkeypatch.setattr(conftest, "BIN", program)
    upstream = HashingEcho()
    # An abstract address this time (systemd's own is a path; both are supported).
    notify = NotifySocket(f"@splicegate-e2e-{os.getpid()}-{time.monotonic_ns()}")
    path = socket_path(tmp_path, "handoff.sock")
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    fleet = None
    try:
        old = start_gateway("--handoff-socket", path, "--event-loops", "2", env={"NOTIFY_SOCKET": notify.address})
        subreaper.groups.append(old.proc.pid)
        pid = old.proc.pid
        notify.wait(lambda m: m.pid == pid and m.fields.get("READY") == "1", "READY=1 once serving")
        listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
        fleet = Fleet(listener["listen"], 10)
        fleet.wait_progress(64 * 1024)
        ids = {s["client"]: s["id"] for s in old.sessions()}

        # 1. A successor that starts and fails; a SIGHUP meanwhile is ignored.
        def script(staged: pathlib.Path) -> None:
            staged.write_text(STAND_IN.format(fifo=fifo))
            staged.chmod(0o755)
        install(program, script)
        start, logged = len(notify.snapshot()), len(old.stderr_text())
        os.kill(pid, signal.SIGHUP)
        notify.wait(lambda m: m.pid == pid and m.fields.get("RELOADING") == "1", "RELOADING=1", after=start)
        line = log_line(old, "SIGHUP: started a successor", after=logged)
        stand_in = int(re.search(r"successor_pid=(\d+)", line).group(1))
        started = wait_until(lambda: re.search(rf"stand-in successor {stand_in} started with: (.*)", old.stderr_text()),
                             timeout=DEADLINE_S, message="the stand-in to start")
        # The same arguments as the running gateway's, plus --take-over its socket.
        assert started.group(1).split() == [*old.args[1:], "--take-over", path]
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda: "SIGHUP ignored: a reload is under way" in old.stderr_text()[logged:],
                   timeout=DEADLINE_S, message="the second SIGHUP ignored")
        with open(fifo, "w") as go:
            go.write("go\n")
        line = log_line(old, "reload failed: the successor exited without taking over; serving on", after=logged)
        assert f"successor_exit=exited with status 1 successor_pid={stand_in} " in line, line
        ended = notify.wait(lambda m: m.pid == pid and m.fields.get("READY") == "1", "READY=1 after the failure",
                            after=start)
        assert "reload failed" in ended.fields["STATUS"], ended
        old.assert_alive()
        fleet.wait_progress(64 * 1024)
        assert os.path.exists(path)

        # 2. A file that cannot be executed: nothing starts.
        install(program, lambda staged: (staged.write_text("not a program\n"), staged.chmod(0o644)))
        start, logged = len(notify.snapshot()), len(old.stderr_text())
        os.kill(pid, signal.SIGHUP)
        line = log_line(old, "reload failed: cannot start a successor; serving on", after=logged)
        assert f"reason=posix_spawn {program}: Permission denied" in line, line
        notify.wait(lambda m: m.pid == pid and m.fields.get("READY") == "1", "READY=1 after the failure", after=start)
        old.assert_alive()
        fleet.wait_progress(64 * 1024)
        assert {s["client"]: s["id"] for s in old.sessions()} == ids

        # 3. The build again: the reload goes through.
        install(program, lambda staged: staged.symlink_to(built))
        admin_url = old.url
        successor = reload(pid, notify, subreaper, old.stderr_text, lambda: old.proc.wait(timeout=DEADLINE_S))
        old.url = ""
        assert pathlib.Path(f"/proc/{successor}/exe").resolve() == built.resolve()
        new = successor_of(old, successor, admin_url)
        fleet.wait_progress(64 * 1024)
        assert {s["client"]: s["id"] for s in new.sessions()} == ids
        fleet.finish(upstream)
        assert subreaper.stop(successor) == 0
    finally:
        if fleet:
            fleet.close()
        upstream.close()
        notify.close()


def readme_unit(heading: str) -> str:
    """The first ```ini block after `heading` in the README."""
    text = (conftest.ROOT / "README.md").read_text()
    start = text.index(f"\n{heading}\n")
    block = re.search(r"```ini\n(.*?)```", text[start:], re.S)
    assert block, f"no ini block after {heading!r}"
    return block.group(1)


@pytest.mark.parametrize("heading, name", [("### A systemd unit", "splicegate.service"),
                                           ("### One systemd unit per node", "splicegate@.service")])
def test_documented_units_pass_systemd_analyze_verify(tmp_path, heading, name):
    """The README's units as systemd reads them: no unknown key, no bad value (those are
    warnings only, so the test wants no output at all), every command executable (the
    gateway's path is the build's here)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not installed; run scripts/deps.sh test")
    unit = readme_unit(heading)
    for needed in ("Type=notify\n", "NotifyAccess=all\n", "ExecReload=/bin/kill -HUP $MAINPID\n", "--handoff-socket /run/splicegate/"):
        assert needed in unit, f"{name} lacks {needed!r}"
    path = tmp_path / name
    path.write_text(unit.replace("/usr/local/bin/splicegate", str(conftest.BIN.resolve())))
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", \
        f"systemd-analyze verify {name}: exit {result.returncode}\n{result.stdout}{result.stderr}"
