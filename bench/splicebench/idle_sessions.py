"""Idle sessions that can prove they are alive (the handoff workload): one process's share.

    python -m splicebench.idle_sessions PORT COUNT FIRST

Opens COUNT connections to 127.0.0.1:PORT (a proxy in front of an echo server) and
prints "opened COUNT". Then, for each line "check" on stdin, sends on every connection
its 4-byte number (FIRST, FIRST+1, ...) and reads it back, and prints
"alive OK COUNT FIRST_PROBLEM" (FIRST_PROBLEM "-" when there is none); a connection that
answered wrong, ended or did not answer within the deadline counts as dead from then on.
At EOF on stdin it closes every connection and exits.

A process of its own because one process cannot hold the descriptors of every session
(the container's hard limit is 20,000), and so that the gateway's clients are not the
harness's Python.
"""
import selectors
import socket
import struct
import sys
import time

NUMBER = struct.Struct(">I")
CHECK_DEADLINE_S = 60.0


def open_all(port, count):
    socks = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        socks.append(s)
        # pace a little, as `bt idle` does, so a proxy's accept queue never overflows (a
        # dropped SYN costs a 1 s retransmit)
        if i % 256 == 255:
            time.sleep(0.02)
    return socks


def check(socks, first, dead):
    """Every live connection echoes its number; returns (alive, first problem or None)."""
    problem = None
    pending = {}
    for i, s in enumerate(socks):
        if i in dead:
            continue
        try:
            s.setblocking(True)
            s.sendall(NUMBER.pack(first + i))
            s.setblocking(False)
            pending[s] = (i, bytearray())
        except OSError as e:
            dead.add(i)
            problem = problem or f"session {first + i}: send failed: {e}"
    sel = selectors.DefaultSelector()
    for s in pending:
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + CHECK_DEADLINE_S
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            i, got = pending[s]
            try:
                data = s.recv(NUMBER.size - len(got))
            except BlockingIOError:
                continue
            except OSError as e:
                data, why = b"", f"recv failed: {e}"
            else:
                why = "EOF"
            if not data:
                dead.add(i)
                problem = problem or f"session {first + i}: {why}"
            else:
                got += data
                if len(got) < NUMBER.size:
                    continue
                if bytes(got) != NUMBER.pack(first + i):
                    dead.add(i)
                    problem = problem or f"session {first + i}: echo {bytes(got).hex()} differs"
            sel.unregister(s)
            del pending[s]
    for s, (i, _) in pending.items():
        dead.add(i)
        problem = problem or f"session {first + i}: no answer within {CHECK_DEADLINE_S:.0f} s"
    sel.close()
    return len(socks) - len(dead), problem


def main():
    port, count, first = (int(x) for x in sys.argv[1:4])
    socks = open_all(port, count)
    print(f"opened {count}", flush=True)
    dead = set()
    for line in sys.stdin:
        if line.strip() == "check":
            alive, problem = check(socks, first, dead)
            print(f"alive {alive} {count} {problem or '-'}", flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
