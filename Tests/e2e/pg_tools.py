"""A throwaway PostgreSQL for a test: initdb in a temp dir, pg_ctl on a free port.

PostgreSQL refuses to run as root, so as root (CI) initdb, pg_ctl and psql run as the
`postgres` user through `runuser`, in a temp dir that user owns; the Unix socket goes into
that dir too. `stop()` and `start()` take the server away and bring it back on the same
port and data (the outage tests); `close()` stops it and removes everything.

    with running_postgres() as pg:
        start_gateway("--cluster-db", pg.url)
        pg.query("SELECT count(*) FROM nodes")
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Iterator

from conftest import free_port

PG_TIMEOUT_S = 60.0


def pg_bin_dir() -> pathlib.Path:
    """Debian's server binaries (/usr/lib/postgresql/<version>/bin), the newest version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(pathlib.Path(path).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql "
                           "(scripts/deps.sh test installs Debian's postgresql)")
    return pathlib.Path(found[-1]).parent


def make_ca(directory: pathlib.Path, name: str) -> tuple[pathlib.Path, pathlib.Path]:
    """A throwaway certificate authority in `directory`: (certificate, key), PEM."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}")
    return cert, key


def make_server_certificate(directory: pathlib.Path, ca: tuple[pathlib.Path, pathlib.Path],
                            names: str) -> tuple[pathlib.Path, pathlib.Path]:
    """A server certificate signed by `ca` for `names` (a subjectAltName value): (cert, key)."""
    cert, key, request = directory / "server.pem", directory / "server.key", directory / "server.csr"
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName={names}\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(request), "-subj", "/CN=splicegate-test-db")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(extensions))
    return cert, key


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=PG_TIMEOUT_S,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")


class Postgres:
    """One PostgreSQL server in its own temp dir, trust auth, superuser `postgres`. With
    `tls`, it also speaks TLS, with a certificate for 127.0.0.1 signed by `ca_file`."""

    def __init__(self, max_connections: int = 200, tls: bool = False) -> None:
        self.bin = pg_bin_dir()
        self.max_connections = max_connections
        self.tls = tls
        self.as_root = os.geteuid() == 0
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="splicegate-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self.running = False
        os.chmod(self.dir, 0o755)
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        if tls:
            ca = make_ca(self.dir, "test-ca")
            self.ca_file = ca[0]
            self.cert_file, self.key_file = make_server_certificate(self.dir, ca, "IP:127.0.0.1,DNS:localhost")
            os.chmod(self.key_file, 0o600)
            if self.as_root:
                shutil.chown(self.key_file, "postgres", "postgres")

    @property
    def url(self) -> str:
        """The `--cluster-db` URL of this server (TCP on 127.0.0.1)."""
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else command

    def _run(self, program: str, *args: str, timeout: float = PG_TIMEOUT_S) -> str:
        result = subprocess.run(self._command(program, *args), capture_output=True, text=True,
                                timeout=timeout, cwd=self.dir, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} exited {result.returncode}:\n"
                               f"{result.stdout}\n{result.stderr}\n{self.server_log()}")
        return result.stdout

    def server_log(self) -> str:
        try:
            return self.log.read_text("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> None:
        """Starts the server (again) and waits until it accepts connections."""
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c max_connections={self.max_connections}")
        if self.tls:
            options += f" -c ssl=on -c ssl_cert_file={self.cert_file} -c ssl_key_file={self.key_file}"
        self._run("pg_ctl", "start", "-w", "-t", str(int(PG_TIMEOUT_S)), "-D", str(self.data),
                  "-l", str(self.log), "-o", options)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stops the server (`fast` ends every connection at once)."""
        if self.running:
            self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))
            self.running = False

    def query(self, sql: str) -> list[list[str]]:
        """Rows of `sql` through psql on the Unix socket, as lists of text fields."""
        out = self._run("psql", "-X", "-q", "-At", "-F", "\t", "-h", str(self.dir), "-p", str(self.port),
                        "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql)
        return [line.split("\t") for line in out.splitlines() if line]

    def background(self, sql: str) -> subprocess.Popen[str]:
        """`sql` through psql in a process of its own, while the test goes on."""
        return subprocess.Popen(self._command("psql", "-X", "-q", "-At", "-h", str(self.dir), "-p", str(self.port),
                                              "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                                              "-c", sql),
                                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def close(self) -> None:
        """Stops the server and removes its directory."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(max_connections: int = 200, tls: bool = False) -> Iterator[Postgres]:
    """A started throwaway server, stopped and removed on exit."""
    server = Postgres(max_connections, tls)
    try:
        server.start()
        yield server
    finally:
        server.close()
