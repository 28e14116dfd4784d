"""Reading live captures in the end-to-end tests: a streaming reader and tshark helpers.

Every capture a test takes goes through `assert_clean` (tshark reads it with no warning,
error or malformed packet) unless the test made the reader drop packets on purpose.
`follow` reassembles one TCP stream with `tshark -z follow,tcp,raw`, which is what a user
does in Wireshark; `interfaces_of_streams` maps tshark's stream numbers to the capture
points (pcapng interfaces) they were seen on.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
import shutil
import socket
import struct
import subprocess
import threading
from typing import Any

import pytest
import requests

TSHARK_TIMEOUT_S = 300.0


def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark not found: scripts/deps.sh test installs Debian's tshark")
    return path


def run_tshark(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([tshark(), *args], capture_output=True, text=True, timeout=TSHARK_TIMEOUT_S)
    assert result.returncode == 0, f"tshark {args[:6]} exited {result.returncode}: {result.stderr[-2000:]}"
    return result


@functools.cache
def packet_layers_only() -> tuple[str, ...]:
    """tshark arguments that dissect what the gateway writes (raw IP and TCP) and nothing
    above it. tshark guesses at every TCP payload with its heuristic dissectors; random test
    bytes sometimes pass one (Thrift's: 256 "Thrift varint value too large" errors, once)
    and are then reported as a malformed message of that protocol, which says nothing about
    the capture. Expert info (`_ws.*`) stays on: it carries TCP's sequence analysis."""
    keep = {"frame", "raw", "ip", "ipv6", "tcp"}
    names = [line.split("\t")[2] for line in run_tshark("-G", "protocols").stdout.splitlines()
             if line.count("\t") >= 2]
    return tuple(arg for name in names if name not in keep and not name.startswith("_ws")
                 for arg in ("--disable-protocol", name))


def stderr_problems(stderr: str) -> list[str]:
    # As root tshark warns that it runs as root (TRAPS.md 12); that is the only line allowed.
    return [line for line in stderr.splitlines()
            if line.strip() and "Running as user" not in line and "could be dangerous" not in line.lower()]


class CaptureStream:
    """GET a capture endpoint and write the pcapng stream to `path` in a thread until it ends."""

    def __init__(self, url: str, path: pathlib.Path, headers: dict[str, str] | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.path = path
        self.error: BaseException | None = None
        self.response = requests.get(url, headers=headers or {}, params=params, stream=True, timeout=(10, 120))
        assert self.response.status_code == 200, f"{self.response.status_code} {self.response.text[:500]}"
        assert self.response.headers["Content-Type"] == "application/x-pcapng"
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with open(self.path, "wb") as out:
                for chunk in self.response.raw.stream(1 << 16, decode_content=False):
                    out.write(chunk)
        except BaseException as error:  # surfaced by wait()
            self.error = error
        finally:
            self.done.set()

    def wait(self, timeout: float = 60.0) -> pathlib.Path:
        """Waits for the stream to end (the session or listener ended) and returns the file."""
        assert self.done.wait(timeout), f"capture stream {self.path.name} did not end within {timeout}s"
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        self.response.close()
        return self.path

    def close(self) -> None:
        self.response.close()
        self.thread.join(10)


def pump(sock: socket.socket, payload: bytes) -> bytes:
    """Sends `payload` while reading the echo in a thread (a large payload would fill both
    ways' buffers if sent first), half-closes, and returns everything read until EOF."""
    got = bytearray()

    def read() -> None:
        while chunk := sock.recv(1 << 16):
            got.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    reader.join(120)
    assert not reader.is_alive(), "echo not finished within 120 s"
    return bytes(got)


def assert_clean(path: pathlib.Path) -> None:
    """tshark reads the file with nothing on stderr, no malformed packet and no expert
    warning or error."""
    result = run_tshark(*packet_layers_only(), "-r", str(path), "-q", "-z", "expert,warn")
    assert not stderr_problems(result.stderr), f"tshark complained about {path.name}: {result.stderr}"
    # `-z expert,warn` lists warnings and errors only; a clean file prints no entry.
    entries = [line for line in result.stdout.splitlines()
               if line.strip() and not line.startswith("=") and "Expert Information" not in line
               and not line.strip().startswith("Severity") and "No expert" not in line]
    assert not entries, f"tshark expert findings in {path.name}:\n{result.stdout[:4000]}"
    malformed = run_tshark(*packet_layers_only(), "-r", str(path),
                           "-Y", "_ws.malformed || _ws.expert.severity >= \"Warning\"", "-T", "fields",
                           "-e", "frame.number")
    assert malformed.stdout.strip() == "", f"malformed or warned packets in {path.name}: {malformed.stdout[:500]}"


def streams(path: pathlib.Path) -> list[dict[str, Any]]:
    """One entry per TCP stream: its number, interface, and the initiator's address."""
    result = run_tshark("-r", str(path), "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "-T", "fields",
                        "-E", "separator=|", "-e", "tcp.stream", "-e", "frame.interface_name",
                        "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst",
                        "-e", "tcp.dstport")
    found = []
    for line in result.stdout.splitlines():
        stream, interface, src4, src6, sport, dst4, dst6, dport = line.split("|")
        found.append({"stream": int(stream), "interface": interface, "src": (src4 or src6, int(sport)),
                      "dst": (dst4 or dst6, int(dport))})
    return found


def by_interface(path: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    """The TCP streams of `streams(path)` grouped by the interface (capture point) they are on."""
    found: dict[str, list[dict]] = {}
    for stream in streams(path):
        found.setdefault(stream["interface"], []).append(stream)
    return found


def follow(path: pathlib.Path, *numbers: int) -> dict[int, tuple[bytes, bytes]]:
    """Each stream's bytes as tshark reassembles them: (initiator's, responder's)."""
    args = ["-r", str(path), "-q"]
    for number in numbers:
        args += ["-z", f"follow,tcp,raw,{number}"]
    result = run_tshark(*args)
    out: dict[int, tuple[bytes, bytes]] = {}
    blocks = result.stdout.split("===================================================================")
    for block in blocks:
        lines = block.strip("\n").splitlines()
        if not lines or not lines[0].startswith("Follow: tcp,raw"):
            continue
        filter_line = next(line for line in lines if line.startswith("Filter:"))
        number = int(filter_line.split("eq")[-1].strip())
        sent, answered = bytearray(), bytearray()
        for line in lines:
            if line.startswith(("Follow:", "Filter:", "Node 0:", "Node 1:")) or not line.strip():
                continue
            if line.startswith("\t"):
                answered += bytes.fromhex(line.strip())
            else:
                sent += bytes.fromhex(line.strip())
        out[number] = (bytes(sent), bytes(answered))
    assert sorted(out) == sorted(numbers), f"tshark followed {sorted(out)} of {sorted(numbers)}"
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def interface_statistics(path: pathlib.Path) -> dict[str, dict[str, int]]:
    """isb_ifrecv and isb_ifdrop per interface name, read from the file's blocks."""
    data = path.read_bytes()
    names: list[str] = []
    stats: dict[str, dict[str, int]] = {}
    offset = 0
    while offset + 12 <= len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        assert length >= 12 and length % 4 == 0 and offset + length <= len(data), f"bad block at {offset}"
        body = data[offset + 8: offset + length - 4]
        if block_type == 1:
            options = _options(body, 8)
            names.append(options[2].decode())
        elif block_type == 5:
            interface = struct.unpack_from("<I", body, 0)[0]
            options = _options(body, 12)
            stats[names[interface]] = {"received": struct.unpack("<Q", options[4])[0],
                                       "dropped": struct.unpack("<Q", options[5])[0]}
        offset += length
    assert offset == len(data), f"{len(data) - offset} trailing bytes after the last block"
    return stats


def _options(body: bytes, start: int) -> dict[int, bytes]:
    options: dict[int, bytes] = {}
    offset = start
    while offset + 4 <= len(body):
        code, length = struct.unpack_from("<HH", body, offset)
        if code == 0:
            break
        options[code] = body[offset + 4: offset + 4 + length]
        offset += 4 + (length + 3) // 4 * 4
    return options
