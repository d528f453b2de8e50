#!/usr/bin/env python3
"""Run a real Elasticsearch for tests: Elastic's integ-test distribution from Maven Central.

    scripts/es_server.py start --version 8.19.x|7.17.29 [--port 0] [--workdir DIR] [--security]
                               [--tls CERT_DIR] [--file-realm DIR]
    scripts/es_server.py stop --workdir DIR          (or --version V: its default workdir)
    scripts/es_server.py status [--workdir DIR]      (one JSON line per workdir, with RSS)

``start`` fetches ``org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip``
with Maven (cached in ~/.m2, no Maven run when the zip is already there), unpacks it into the
workdir (default ``/tmp/l7analytics-es/<version>``, never in the repository), starts it on
127.0.0.1 as a single node with a fresh data directory, waits for a yellow cluster and prints
one line of JSON: ``{"url": ..., "version": ..., "pid": ..., "workdir": ...}`` (with
``--security`` also ``username`` and ``password`` of a superuser). ``8.19.x`` means the newest
8.19 release that Maven can fetch; the answer is remembered in the workdir.

``--tls CERT_DIR`` serves HTTPS, as Calico runs Elasticsearch: CERT_DIR holds PEM files
``ca.crt``, ``node.crt`` and ``node.key`` (copied into ``config/certs``); it implies
``--security``, and the URL printed is ``https://localhost:<port>`` (the certificate should name
``localhost``). ``--file-realm DIR`` installs DIR's ``roles.yml``, ``users`` and ``users_roles``
(the file realm's three files, any of them) before the superuser is added: roles and users for
privilege tests, since the integ-test distribution has no security index for native ones.

Elasticsearch refuses to run as root: as root the server runs as the system user ``l7es``
(``$L7_ES_USER`` if set; created once with ``useradd --system``, under a machine-wide lock so
that servers starting in parallel agree on one uid); as any other user it runs as that user.
It needs no bundled JDK: ``ES_JAVA_HOME`` is a JDK 17 from /usr/lib/jvm (or ``$L7_ES_JAVA_HOME``).
Failures exit 1 with one line naming the reason on stderr, after the tail of the server log.
Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import NoReturn

GROUP = "org.elasticsearch.distribution.integ-test-zip"
ARTIFACT = "elasticsearch"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
ROOT_WORKDIR = Path(os.environ.get("L7_ES_ROOT", "/tmp/l7analytics-es"))
SERVICE_USER = os.environ.get("L7_ES_USER", "l7es")
SUPERUSER = "l7admin"
# C1 only and no heap pre-touch: starts ~20 % faster, and the test data is small.
HEAP = "-Xms512m -Xmx512m -XX:TieredStopAtLevel=1 -XX:-AlwaysPreTouch"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40


class Failure(Exception):
    """A reason to give up, said in one line."""


def log(message: str) -> None:
    print(f"es_server: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- fetching


def m2_repository() -> Path:
    return Path(os.environ.get("L7_ES_M2_REPO", Path.home() / ".m2" / "repository"))


def artifact_dir() -> Path:
    return m2_repository() / GROUP.replace(".", "/") / ARTIFACT


def local_zip(version: str) -> Path:
    return artifact_dir() / version / f"{ARTIFACT}-{version}.zip"


def run_maven(coordinates: str) -> tuple[bool, str]:
    """``mvn dependency:get`` of one artifact; (ok, last error line)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise Failure("mvn is not installed: cannot fetch Elasticsearch from Maven Central")
    cmd = [
        mvn, "-B", "-q", "-U", f"{MAVEN_DEPENDENCY_PLUGIN}:get",
        f"-Dartifact={coordinates}", "-Dtransitive=false",
    ]  # fmt: skip
    if os.environ.get("L7_ES_M2_REPO"):
        cmd.append(f"-Dmaven.repo.local={m2_repository()}")
    proc = subprocess.run(
        cmd, cwd="/tmp", stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "[ERROR]" in ln]
    reason = re.sub(r"\x1b\[[0-9;]*m", "", errors[0]) if errors else ""
    reason = reason.split("Couldn't download artifact: ")[-1].replace("[ERROR]", "")
    return proc.returncode == 0, reason.replace(" -> [Help 1]", "").strip()


@contextlib.contextmanager
def maven_lock():
    """One Maven run at a time on this machine (two servers may start in parallel)."""
    directory = artifact_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".l7analytics-es.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fetch(version: str) -> Path:
    """The zip of one exact version, fetched with Maven unless already in ~/.m2."""
    path = local_zip(version)
    if path.is_file():
        return path
    t0 = time.monotonic()
    with maven_lock():
        ok, reason = (
            (True, "") if path.is_file() else run_maven(f"{GROUP}:{ARTIFACT}:{version}:zip")
        )
    if not ok or not path.is_file():
        raise Failure(
            f"could not fetch {GROUP}:{ARTIFACT}:{version}:zip with Maven"
            + (f" ({reason})" if reason else "")
        )
    log(f"fetched Elasticsearch {version} in {time.monotonic() - t0:.1f} s: {path}")
    return path


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def metadata_versions() -> set[str]:
    """Versions listed in Maven's metadata of the artifact (fetched once through a RELEASE pom)."""
    directory = artifact_dir()
    files = list(directory.glob("maven-metadata*.xml")) if directory.is_dir() else []
    if not files:
        with maven_lock():
            if not list(directory.glob("maven-metadata*.xml")):
                run_maven(f"{GROUP}:{ARTIFACT}:RELEASE:pom")  # writes maven-metadata-central.xml
        files = list(directory.glob("maven-metadata*.xml"))
    found: set[str] = set()
    for file in files:
        found.update(re.findall(r"<version>\s*([0-9.]+)\s*</version>", file.read_text("utf-8")))
    return found


def resolve(spec: str, workdir: Path) -> tuple[str, Path]:
    """(exact version, zip) for ``8.19.21`` or a pattern ``8.19.x`` (the newest that fetches)."""
    if not re.fullmatch(r"\d+\.\d+\.(\d+|x)", spec):
        raise Failure(f"bad --version {spec!r}: give e.g. 8.19.x or 7.17.29")
    if not spec.endswith(".x"):
        return spec, fetch(spec)
    # remembered in the workdir and, for the next fresh workdirs, beside them (delete to renew)
    remembered = [workdir / "resolved-version", ROOT_WORKDIR / f"resolved-{spec}"]
    for note in remembered:
        version = note.read_text().strip() if note.is_file() else ""
        if version and local_zip(version).is_file():
            return version, local_zip(version)
    prefix = spec[:-1]
    pattern = re.compile(re.escape(prefix) + r"\d+")

    def candidates() -> set[str]:
        local = {p.name for p in artifact_dir().glob(prefix + "*") if local_zip(p.name).is_file()}
        return {v for v in local | metadata_versions() if pattern.fullmatch(v)}

    found = candidates()
    if not found:  # no metadata (offline, or an odd mirror): count down from a recent patch
        found = {f"{prefix}{n}" for n in range(25, -1, -1)}
    tried = []
    for version in sorted(found, key=version_key, reverse=True):
        try:
            path = fetch(version)
        except Failure:
            tried.append(version)
            continue
        for note in remembered:
            with contextlib.suppress(OSError):
                note.parent.mkdir(parents=True, exist_ok=True)
                note.write_text(version + "\n")
        return version, path
    raise Failure(f"could not fetch any Elasticsearch {spec} with Maven (tried {', '.join(tried)})")


# --------------------------------------------------------------------------- preparing


def java_home() -> str:
    override = os.environ.get("L7_ES_JAVA_HOME")
    if override:
        return override
    jvm = Path("/usr/lib/jvm")
    homes = [p for p in jvm.iterdir() if (p / "bin" / "java").is_file()] if jvm.is_dir() else []
    for home in sorted(homes, key=lambda p: ("17" not in p.name, p.is_symlink(), p.name)):
        return str(home)  # a JDK 17 first (what 7.17 and 8.x are tested with), a real dir first
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    raise Failure("no JDK found under /usr/lib/jvm (set L7_ES_JAVA_HOME to a JDK 17)")


def service_user() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root (created once); None when we are not root.

    Two servers starting at once on a fresh machine used to run ``useradd`` side by side; both
    "succeeded", the later one rewrote /etc/passwd, and the first chowned its workdir to a uid
    that no longer existed (``AccessDeniedException`` on ``config/elasticsearch.yml``). The
    look-up and the creation therefore happen under one machine-wide lock, and the answer is
    read back from /etc/passwd after the lock is released.
    """
    if os.geteuid() != 0:
        return None
    name = SERVICE_USER
    with machine_lock("useradd"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        cmd = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
               "--shell", "/usr/sbin/nologin", name]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise Failure(f"cannot create the user {name}: {proc.stderr.strip()}") from None


@contextlib.contextmanager
def machine_lock(purpose: str):
    """An exclusive lock shared by every es_server.py on this machine (a file in /tmp)."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"l7analytics-es-{purpose}.lock"
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def check_reachable(path: Path, user: pwd.struct_passwd | None) -> None:
    """The service user must be able to walk down to the workdir (so not under /root)."""
    if user is None:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat() if parent.exists() else None
        if mode and mode.st_uid != user.pw_uid and not mode.st_mode & 0o001:
            raise Failure(
                f"workdir {path} is not reachable for user {user.pw_name} ({parent} is not "
                "world-searchable): choose a workdir outside /root, e.g. under /tmp"
            )


def unpack(zip_path: Path, version: str, workdir: Path) -> Path:
    """The unpacked server ``workdir/elasticsearch-<version>`` (kept between starts)."""
    home = workdir / f"elasticsearch-{version}"
    if (home / ".unpacked").is_file():
        return home
    staging = workdir / f".unpacking-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    t0 = time.monotonic()
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            target = Path(archive.extract(info, staging))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)
    top = staging / f"elasticsearch-{version}"
    if not (top / "bin" / "elasticsearch").is_file():
        raise Failure(f"{zip_path} has no elasticsearch-{version}/bin/elasticsearch")
    for script in (top / "bin").iterdir():  # keep bin/* executable whatever the zip says
        script.chmod(script.stat().st_mode | 0o755)
    shutil.rmtree(home, ignore_errors=True)
    top.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    (home / ".unpacked").write_text(version + "\n")
    log(f"unpacked {zip_path.name} in {time.monotonic() - t0:.1f} s into {home}")
    return home


def chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def as_user(cmd: list[str], user: pwd.struct_passwd | None) -> list[str]:
    return cmd if user is None else ["runuser", "-u", user.pw_name, "--", *cmd]


def server_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "JAVA_TOOL"))}
    env.update(
        ES_JAVA_HOME=java_home(),
        ES_JAVA_OPTS=os.environ.get("L7_ES_JAVA_OPTS", HEAP),
        ES_TMPDIR=str(workdir / "tmp"),
    )
    env.pop("JAVA_HOME", None)
    return env


def ensure_superuser(home: Path, workdir: Path, user: pwd.struct_passwd | None) -> str:
    """A file-realm superuser ``l7admin``; its password is kept in ``workdir/password``."""
    secret = workdir / "password"
    users = home / "config" / "users"
    listed = users.is_file() and any(
        line.startswith(SUPERUSER + ":") for line in users.read_text().splitlines()
    )
    if listed and secret.is_file():
        return secret.read_text().strip()
    tool = str(home / "bin" / "elasticsearch-users")
    env = server_env(workdir)
    if listed:
        subprocess.run(as_user([tool, "userdel", SUPERUSER], user), env=env,
                       capture_output=True, check=False)  # fmt: skip
    password = secrets.token_urlsafe(18)
    proc = subprocess.run(
        as_user([tool, "useradd", SUPERUSER, "-p", password, "-r", "superuser"], user),
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise Failure(f"elasticsearch-users useradd failed: {(proc.stderr or proc.stdout).strip()}")
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    return password


# --------------------------------------------------------------------------- running


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a running Elasticsearch (not a reused pid, not a zombie)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"org.elasticsearch" in cmdline


def pid_exists(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def read_pid(workdir: Path) -> int | None:
    try:
        return int((workdir / "run" / "es.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def http_get(
    url: str, auth: tuple[str, str] | None, timeout: float = 5.0, ca_file: Path | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def read_port(logs: Path) -> int | None:
    """The HTTP port the node bound (``node.portsfile`` writes ``logs/http.ports``)."""
    try:
        first = (logs / "http.ports").read_text().split()[0]
    except (OSError, IndexError):
        return None
    match = re.search(r":(\d+)$", first)
    return int(match.group(1)) if match else None


def log_tail(workdir: Path) -> str:
    lines: list[str] = []
    for path in (workdir / "logs" / "elasticsearch.log", workdir / "run" / "launcher.log"):
        if path.is_file():
            text = path.read_text("utf-8", "replace").splitlines()
            lines += [f"--- {path} (last {LOG_TAIL_LINES} lines)", *text[-LOG_TAIL_LINES:]]
    return "\n".join(lines) or f"(no log in {workdir})"


def stop(workdir: Path, quiet: bool = False) -> bool:
    """Stop the server recorded in ``workdir``: SIGTERM, then SIGKILL after 30 s."""
    pid = read_pid(workdir)
    if pid is None or not pid_alive(pid):
        if not quiet:
            log(f"no server running in {workdir}")
        (workdir / "run" / "es.pid").unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_exists(pid):
        log(f"pid {pid} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s: SIGKILL")
        os.kill(pid, signal.SIGKILL)
        while pid_exists(pid):
            time.sleep(0.1)
    (workdir / "run" / "es.pid").unlink(missing_ok=True)
    if not quiet:
        log(f"stopped pid {pid} ({workdir})")
    return True


TLS_FILES = ("ca.crt", "node.crt", "node.key")
REALM_FILES = ("roles.yml", "users", "users_roles")


def install_config_files(
    source: Path, names: tuple[str, ...], target: Path, required: bool
) -> None:
    """Copy the named files of ``source`` into ``target`` (a folder of the server's config)."""
    if not source.is_dir():
        raise Failure(f"{source} is not a folder")
    missing = [name for name in names if not (source / name).is_file()]
    if required and missing:
        raise Failure(f"{source} lacks {', '.join(missing)}")
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)


def tls_settings() -> dict[str, str]:
    """HTTPS with the certificates installed in ``config/certs`` (paths relative to config)."""
    return {
        "xpack.security.http.ssl.enabled": "true",
        "xpack.security.http.ssl.key": "certs/node.key",
        "xpack.security.http.ssl.certificate": "certs/node.crt",
        "xpack.security.http.ssl.certificate_authorities": "certs/ca.crt",
    }


def start(
    spec: str,
    workdir: Path,
    port: int,
    security: bool,
    tls: Path | None = None,
    file_realm: Path | None = None,
) -> dict:
    t_start = time.monotonic()
    security = security or tls is not None
    workdir = workdir.resolve()
    user = service_user()
    workdir.mkdir(parents=True, exist_ok=True)
    check_reachable(workdir, user)
    if stop(workdir, quiet=True):
        log(f"stopped a server left running in {workdir}")
    if port:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as err:
                raise Failure(f"port {port} on 127.0.0.1 is not free ({err.strerror})") from None
    version, zip_path = resolve(spec, workdir)
    home = unpack(zip_path, version, workdir)
    major = int(version.split(".")[0])

    data, logs, run, tmp = (workdir / n for n in ("data", "logs", "run", "tmp"))
    for directory in (data, logs, run, tmp):  # a fresh cluster every start
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
    state_file = workdir / "state.json"
    state_file.unlink(missing_ok=True)
    config = home / "config"
    if tls:
        install_config_files(tls, TLS_FILES, config / "certs", required=True)
    if file_realm:
        install_config_files(file_realm, REALM_FILES, config, required=False)
    chown_tree(workdir, user)

    password = ensure_superuser(home, workdir, user) if security else None
    settings = {
        "network.host": "127.0.0.1",
        "http.port": str(port),
        "transport.port": "0",
        "node.portsfile": "true",
        "discovery.type": "single-node",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "path.data": str(data),
        "path.logs": str(logs),
        "xpack.security.enabled": "true" if security else "false",
    }
    if security:
        settings["xpack.security.http.ssl.enabled"] = "false"
        settings["xpack.security.transport.ssl.enabled"] = "false"
        settings["xpack.security.authc.api_key.enabled"] = "true"  # 7.x: off without HTTP TLS
        if major >= 8:
            settings["xpack.security.autoconfiguration.enabled"] = "false"
        if tls:
            settings.update(tls_settings())
    cmd = [str(home / "bin" / "elasticsearch"), "-d", "-p", str(run / "es.pid")]
    for key, value in settings.items():
        cmd += ["-E", f"{key}={value}"]
    launcher_log = run / "launcher.log"
    with open(launcher_log, "wb") as out:
        launcher = subprocess.Popen(
            as_user(cmd, user), cwd=home, env=server_env(workdir), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def fail(reason: str) -> NoReturn:
        sys.stderr.write(log_tail(workdir) + "\n")
        stop(workdir, quiet=True)
        with contextlib.suppress(OSError):  # a node that has not written its pid file yet
            os.killpg(launcher.pid, signal.SIGKILL)
        raise Failure(reason)

    auth = (SUPERUSER, password) if password else None
    deadline = t_start + START_TIMEOUT_S
    url = seen_pid = returned_at = None
    while time.monotonic() < deadline:
        # 8.x: `-d` returns once the node runs (non-zero if it failed); 7.x returns 0 at once,
        # the node writes its pid file during bootstrap and deletes it when it dies.
        code = launcher.poll()
        if code not in (None, 0):
            fail(f"Elasticsearch {version} failed to start (launcher exit status {code})")
        if code == 0 and returned_at is None:
            returned_at = time.monotonic()
        seen_pid = read_pid(workdir) or seen_pid
        if seen_pid is not None and not pid_alive(seen_pid):
            fail(f"Elasticsearch {version} exited during startup (pid {seen_pid})")
        if seen_pid is None and returned_at and time.monotonic() - returned_at > 30:
            fail(f"Elasticsearch {version} wrote no pid file within 30 s")
        if url is None and seen_pid and (bound := read_port(logs)):
            # the ports file proves that this node bound it
            url = f"https://localhost:{bound}" if tls else f"http://127.0.0.1:{bound}"
        if url:
            try:
                status, _ = http_get(
                    f"{url}/_cluster/health?wait_for_status=yellow&timeout=1s",
                    auth,
                    ca_file=config / "certs" / "ca.crt" if tls else None,
                )
            except (OSError, urllib.error.URLError):
                status = 0
            if status == 200:
                break
        time.sleep(0.3)
    else:
        fail(
            f"Elasticsearch {version} did not answer a yellow /_cluster/health within "
            f"{START_TIMEOUT_S:.0f} s"
        )
    state = {"url": url, "version": version, "pid": read_pid(workdir), "workdir": str(workdir)}
    if security:
        state.update(username=SUPERUSER, password=password)
    if tls:
        state.update(ca_certs=str(tls / "ca.crt"))
    state_file.write_text(json.dumps(state) + "\n")
    state_file.chmod(0o600)
    log(f"Elasticsearch {version} up at {url} in {time.monotonic() - t_start:.1f} s")
    return state


def status(workdir: Path | None) -> int:
    workdirs = [workdir] if workdir else sorted(p for p in ROOT_WORKDIR.glob("*") if p.is_dir())
    running = 0
    for directory in workdirs:
        pid = read_pid(directory)
        alive = pid is not None and pid_alive(pid)
        try:
            state = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError):
            state = {"workdir": str(directory)}
        state.pop("password", None)
        state.update(running=alive, pid=pid if alive else None)
        if alive:
            running += 1
            state["rss_mb"] = rss_mb(pid)
        print(json.dumps(state), flush=True)
    return 0 if (running if workdir is None else running == len(workdirs)) else 1


def default_workdir(spec: str, security: bool) -> Path:
    return ROOT_WORKDIR / (spec + ("-security" if security else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_start = commands.add_parser("start", help="fetch, unpack and start a server")
    p_start.add_argument("--version", required=True, help="e.g. 8.19.x (newest 8.19) or 7.17.29")
    p_start.add_argument("--port", type=int, default=0, help="HTTP port (0: any free port)")
    p_start.add_argument("--workdir", type=Path, help="default /tmp/l7analytics-es/<version>")
    p_start.add_argument("--security", action="store_true", help="security on, with a superuser")
    p_start.add_argument(
        "--tls",
        type=Path,
        metavar="CERT_DIR",
        help="HTTPS with CERT_DIR's ca.crt, node.crt, node.key (implies --security)",
    )
    p_start.add_argument(
        "--file-realm",
        type=Path,
        metavar="DIR",
        help="install DIR's roles.yml, users, users_roles (file realm)",
    )
    p_stop = commands.add_parser("stop", help="stop the server of a workdir")
    p_stop.add_argument("--workdir", type=Path)
    p_stop.add_argument("--version", help="stop the server of this version's default workdir")
    p_stop.add_argument("--security", action="store_true")
    p_status = commands.add_parser("status", help="one JSON line per workdir")
    p_status.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            security = args.security or args.tls is not None
            workdir = args.workdir or default_workdir(args.version, security)
            state = start(args.version, workdir, args.port, security, args.tls, args.file_realm)
            print(json.dumps(state), flush=True)
        elif args.command == "stop":
            if not (args.workdir or args.version):
                parser.error("stop needs --workdir (or --version)")
            stop(args.workdir or default_workdir(args.version, args.security))
        else:
            return status(args.workdir)
    except Failure as failure:
        print(f"es_server: error: {failure}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
