#!/usr/bin/env python3
"""Run Airflow spread over processes as production runs it, for tests and benchmarks:
PostgreSQL (metadata database) and Redis (Celery broker) from Debian's packages, then the
scheduler, the dag-processor, the api-server, the triggerer and N Celery workers, each a process
of its own.

    scripts/celery_stack.py start --workdir DIR [--workers 2] [--dags dags/] [--env K=V ...]
    scripts/celery_stack.py stop --workdir DIR

``start`` prints one line of JSON (the environment an ``airflow`` command needs to talk to
this stack, the pids, the API URL) and leaves the processes running; ``stop`` ends them all.
From Python, :class:`CeleryStack` is a context manager that does the same.

- PostgreSQL: ``initdb`` from ``/usr/lib/postgresql/<major>/bin``; installed with
  ``apt-get install postgresql`` when missing (as root). It refuses to run as root, so as root
  it runs as the ``postgres`` user that Debian's package creates; otherwise as the current user.
  Its data directory is fresh, under DIR, on a free port, with trust authentication on
  127.0.0.1 only.
- Redis: ``redis-server`` (``apt-get install redis-server`` when missing, as root), no
  persistence, on a free port.
- Airflow: one ``AIRFLOW_HOME`` under DIR; ``airflow db migrate`` once; every component
  shares the database, the broker, the JWT secret and the Execution API URL. Worker ``i`` is
  ``--celery-hostname worker<i>@...`` and reports the hostname ``worker<i>`` on its task
  instances (``[core] hostname_callable``), so a test can tell which worker ran what.

Failures raise :class:`Failure` (the command line: exit 1 with one line on stderr, after the
tail of the component's log). Standard library only, plus Airflow itself for the components
(and psycopg2 for :meth:`CeleryStack.query`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 180.0
LOG_TAIL_LINES = 30
#: components other than the workers, in the order they start
COMPONENTS = ("scheduler", "dag-processor", "api-server", "triggerer")


class Failure(Exception):
    """A reason to give up, said in one line."""


def log(message: str) -> None:
    print(f"celery_stack: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def machine_lock(purpose: str):
    """One lock for every process on this machine (apt-get runs one at a time)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"l7analytics-stack-{purpose}.lock"
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def apt_install(package: str, wanted: str) -> None:
    """``apt-get install -y package`` (after ``apt-get update``) when ``wanted`` is missing;
    only root can, anyone else is told what to install."""
    if os.geteuid() != 0:
        raise Failure(
            f"{wanted} is missing: install Debian's {package} (apt-get install {package})"
        )
    with machine_lock("apt"):
        log(f"installing {package} (apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode:
                raise Failure(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}")


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` (installing Debian's package if none)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if not found:
        apt_install("postgresql", "PostgreSQL (initdb)")
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if not found:
        raise Failure("PostgreSQL installed, but no /usr/lib/postgresql/*/bin/initdb")
    return Path(found[-1]).parent


def _major(path: str) -> int:
    return int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0


def redis_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        apt_install("redis-server", "redis-server")
        found = shutil.which("redis-server")
    if not found:
        raise Failure("redis-server installed, but not on PATH")
    return found


def postgres_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: as root, the ``postgres`` user of Debian's package; else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise Failure("running as root and there is no 'postgres' user to run PostgreSQL") from None


def as_user(cmd: list[str], user: pwd.struct_passwd | None) -> list[str]:
    return cmd if user is None else ["runuser", "-u", user.pw_name, "--", *cmd]


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for(check, what: str, log_file: Path, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise Failure(f"{what} exited with {process.returncode}:\n{tail(log_file)}")
        time.sleep(0.5)
    raise Failure(f"{what} did not start in {START_TIMEOUT_S:.0f} s:\n{tail(log_file)}")


# --------------------------------------------------------------------------- PostgreSQL


def start_postgres(workdir: Path) -> dict:
    """A fresh cluster in ``workdir/postgres`` with a database ``airflow`` (user ``airflow``)."""
    bin_dir, user = postgres_bin(), postgres_user()
    data, sockets = workdir / "postgres" / "data", workdir / "postgres" / "run"
    shutil.rmtree(workdir / "postgres", ignore_errors=True)
    sockets.mkdir(parents=True)
    if user is not None:
        for path in (workdir / "postgres", sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    port, log_file = free_port(), workdir / "postgres" / "server.log"
    run = [
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        "airflow",
        "--auth=trust",
        "--encoding=UTF8",
        "--no-sync",
    ]
    proc = subprocess.run(as_user(run, user), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise Failure(f"initdb failed: {proc.stderr.strip()[-500:]}")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(log_file),
        "-w",
        "-t",
        "60",
        "start",
    ]
    proc = subprocess.run(as_user(start, user), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise Failure(f"PostgreSQL did not start: {proc.stderr.strip()}\n{tail(log_file)}")
    create = [
        str(bin_dir / "createdb"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        "airflow",
        "airflow",
    ]
    proc = subprocess.run(create, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise Failure(f"createdb failed: {proc.stderr.strip()}")
    pid = int((data / "postmaster.pid").read_text().split()[0])
    return {
        "port": port,
        "pid": pid,
        "data": str(data),
        "bin": str(bin_dir),
        "user": user.pw_name if user else None,
    }


def stop_postgres(info: dict) -> None:
    user = pwd.getpwnam(info["user"]) if info.get("user") else None
    stop = [str(Path(info["bin"]) / "pg_ctl"), "-D", info["data"], "-m", "fast", "-w", "stop"]
    subprocess.run(as_user(stop, user), capture_output=True, check=False, timeout=60)


# --------------------------------------------------------------------------- Redis


def start_redis(workdir: Path) -> dict:
    port, log_file = free_port(), workdir / "redis.log"
    cmd = [
        redis_bin(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(workdir),
    ]
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_for(answers, "redis-server", log_file, process)
    return {"port": port, "pid": process.pid}


# --------------------------------------------------------------------------- Airflow


def airflow_env(
    workdir: Path, pg_port: int, redis_port: int, api_port: int, dags: Path, extra: dict[str, str]
) -> dict[str, str]:
    """What every component (and every ``airflow`` command against the stack) shares."""
    database = f"postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(workdir / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        # New DAG files are parsed at once, not after the default 5 minutes.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # Who ran a task: worker<i>, from L7_WORKER_NAME (see worker_env).
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "celery_stack.worker_name",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")) if p
        ),
    }
    env.update(extra)
    return env


def worker_name() -> str:
    """``[core] hostname_callable`` of the stack: ``$L7_WORKER_NAME`` (``worker1``...) in a
    worker, the machine's name anywhere else."""
    return os.environ.get("L7_WORKER_NAME") or socket.getfqdn()


class CeleryStack:
    """PostgreSQL, Redis and Airflow's components as separate processes under ``workdir``.

    ``env`` is what an ``airflow`` command needs to act on this stack; :meth:`airflow` runs
    one; :meth:`kill_worker` SIGKILLs a worker and every process it started."""

    def __init__(
        self,
        workdir: Path,
        *,
        workers: int = 2,
        dags: Path | None = None,
        env: dict[str, str] | None = None,
        concurrency: int = 2,
    ) -> None:
        self.workdir = Path(workdir)
        self.workers = workers
        self.concurrency = concurrency
        self.dags = Path(dags or Path(__file__).resolve().parents[1] / "dags")
        self.extra = dict(env or {})
        self.processes: dict[str, subprocess.Popen] = {}
        self.postgres: dict | None = None
        self.redis: dict | None = None
        self.env: dict[str, str] = {}
        self.api_url = ""

    def __enter__(self) -> CeleryStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- starting -----------------------------------------------------------------------
    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the postgres user walks down to its data directory
            self.workdir.chmod(0o755)
        t0 = time.monotonic()
        self.postgres = start_postgres(self.workdir)
        self.redis = start_redis(self.workdir)
        api_port = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.env = airflow_env(
            self.workdir, self.postgres["port"], self.redis["port"], api_port, self.dags, self.extra
        )
        self.airflow("db", "migrate", timeout=600)
        for component in COMPONENTS:
            self._spawn(component, [component])
        for i in range(1, self.workers + 1):
            self.start_worker(i)
        wait_for(self._api_up, "api-server", self._log("api-server"), self.processes["api-server"])
        log(f"started in {time.monotonic() - t0:.0f} s: {self.api_url}")

    def start_worker(self, i: int) -> None:
        """Worker ``i`` (``worker<i>``): ``airflow celery worker`` on the default queue."""
        name = f"worker{i}"
        args = [
            "celery",
            "worker",
            "--concurrency",
            str(self.concurrency),
            "--celery-hostname",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
        logs = str(free_port())  # each worker serves its task logs on a port of its own
        self._spawn(
            name, args, {"L7_WORKER_NAME": name, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": logs}
        )

    def _spawn(self, name: str, args: list[str], extra: dict[str, str] | None = None) -> None:
        log_file = self._log(name)
        with open(log_file, "ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env={**self.env, **(extra or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: one kill ends all it started
            )

    def _log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _api_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=2):
                return True
        except OSError:
            return False

    # -- using --------------------------------------------------------------------------
    def airflow(self, *args: str, timeout: float = 300, check: bool = True):
        """``airflow ARGS`` against this stack; raises Failure (with its output) on an error."""
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode:
            raise Failure(
                f"airflow {' '.join(args)}: exit {proc.returncode}\n"
                f"{(proc.stdout + proc.stderr)[-3000:]}"
            )
        return proc

    def query(self, sql: str, *args: object) -> list[tuple]:
        """Rows of ``sql`` on the metadata database (psycopg2, as the components use it)."""
        import psycopg2

        with (
            psycopg2.connect(
                host="127.0.0.1", port=self.postgres["port"], user="airflow", dbname="airflow"
            ) as db,
            db.cursor() as cursor,
        ):
            cursor.execute(sql, args)
            return cursor.fetchall()

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the dag-processor has parsed ``dag_id`` (a backfill needs it serialized)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query("SELECT count(*) FROM serialized_dag WHERE dag_id = %s", dag_id)[0][0]:
                return
            time.sleep(1)
        raise Failure(f"{dag_id} was not parsed in {timeout:.0f} s:\n{self.logs('dag-processor')}")

    def backfill(
        self, dag_id: str, first: str, last: str, *extra: str, reprocess: str = "failed"
    ) -> int:
        """``airflow backfill create`` over the intervals starting from ``first`` to ``last``
        (a DAG with ``depends_on_past`` must say which runs it redoes: ``reprocess``);
        returns the backfill's id. The scheduler runs it (the DAG must be unpaused)."""
        self.airflow(
            "backfill",
            "create",
            "--dag-id",
            dag_id,
            "--from-date",
            first,
            "--to-date",
            last,
            "--reprocess-behavior",
            reprocess,
            *extra,
        )
        return self.query("SELECT max(id) FROM backfill WHERE dag_id = %s", dag_id)[0][0]

    def backfill_runs(self, backfill_id: int) -> list[tuple[str, str]]:
        """``(run_id, state)`` of the backfill's DAG runs."""
        return self.query(
            "SELECT dr.run_id, dr.state FROM dag_run dr JOIN backfill_dag_run b "
            "ON b.dag_run_id = dr.id WHERE b.backfill_id = %s",
            backfill_id,
        )

    def wait_for_backfill(self, backfill_id: int, timeout: float = 600) -> None:
        """Until every run of the backfill has ended and the scheduler has marked it complete
        (only one backfill of a DAG runs at a time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.backfill_runs(backfill_id)
            done = self.query("SELECT completed_at FROM backfill WHERE id = %s", backfill_id)
            if runs and all(s in ("success", "failed") for _, s in runs) and done[0][0]:
                return
            time.sleep(1)
        raise Failure(
            f"backfill {backfill_id} unfinished after {timeout:.0f} s: "
            f"{self.backfill_runs(backfill_id)}\n{self.logs('scheduler')}"
        )

    def processes_pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker ``i`` and every process it started (a machine lost at once)."""
        process = self.processes.pop(f"worker{i}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def logs(self, name: str) -> str:
        return tail(self._log(name), 200)

    # -- stopping -----------------------------------------------------------------------
    def stop(self) -> None:
        """SIGTERM every component's process group, SIGKILL what is left after 20 s."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self.processes.clear()
        if self.redis:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.redis["pid"], signal.SIGKILL)
            self.redis = None
        if self.postgres:
            stop_postgres(self.postgres)
            self.postgres = None

    def state(self) -> dict:
        return {
            "workdir": str(self.workdir),
            "api_url": self.api_url,
            "pids": {n: p.pid for n, p in self.processes.items()},
            "postgres": self.postgres,
            "redis": self.redis,
        }


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the stack; print its state as JSON")
    start.add_argument("--workdir", type=Path, required=True)
    start.add_argument("--workers", type=int, default=2)
    start.add_argument("--dags", type=Path, default=None)
    start.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="an extra variable for every component (repeatable)",
    )
    stop = sub.add_parser("stop", help="stop the stack started in --workdir")
    stop.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    state_file = args.workdir / "stack.json"
    try:
        if args.command == "start":
            extra = dict(item.split("=", 1) for item in args.env)
            stack = CeleryStack(args.workdir, workers=args.workers, dags=args.dags, env=extra)
            try:
                stack.start()
            except BaseException:
                stack.stop()
                raise
            state = stack.state()
            state_file.write_text(json.dumps(state))
            print(json.dumps(state))
            return 0
        return _stop_from(state_file)
    except Failure as exc:
        log(str(exc))
        return 1


def _stop_from(state_file: Path) -> int:
    if not state_file.is_file():
        raise Failure(f"no stack in {state_file.parent} ({state_file.name} missing)")
    state = json.loads(state_file.read_text())
    for pid in [*state["pids"].values(), (state.get("redis") or {}).get("pid")]:
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
    if state.get("postgres"):
        stop_postgres(state["postgres"])
    state_file.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
