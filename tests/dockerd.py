"""Docker for the image tests, with no registry in reach: a private dockerd, a base image made
here with debootstrap, and this machine's pip indexes served to the builds over loopback.

The daemon (Debian's docker.io) listens on a socket in a directory of the test session's, with no
bridge, iptables or IP forwarding: containers share the host's network, which the tests only use
on 127.0.0.1. `.ci/run` installs docker.io and debootstrap; elsewhere the tests that need them
say so and skip.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

from tests.s3server import stop_process

BASE_IMAGE = "local/debian-python:bookworm"
DEBIAN_MIRROR = os.environ.get("WSSS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
RUNC_WRAPPER = Path(__file__).with_name("runc_no_oom_adj.py")
TRUST_STORE = Path("/etc/ssl/certs/ca-certificates.crt")


def cache_root() -> Path:
    """Where images, layers and the base rootfs persist between test sessions: outside the clone
    (a fresh clone reuses them instead of adding ~14 GiB of its own), in WSSS_TEST_CACHE or the
    user's cache directory."""
    if chosen := os.environ.get("WSSS_TEST_CACHE"):
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wsss-tests"


def claim_cache(fallback: Path) -> tuple[Path, int | None]:
    """The shared cache with an exclusive lock (one dockerd per data root), or FALLBACK (this
    session's own, empty) while another session holds it. Returns the directory and the lock's
    descriptor, to be closed when the daemon stops."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    lock = os.open(root / "lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        print(f"{root} is in use by another test session: building in {fallback}")
        return fallback, None
    return root, lock


def missing_tools() -> list[str]:
    return [tool for tool in ("dockerd", "docker", "debootstrap") if shutil.which(tool) is None]


class DockerDaemon:
    """dockerd keeping images and layers in CACHE/dockerd (kept across sessions: a rebuild after
    a code change redoes only the last layers) and its socket, state and log in RUN; `run(...)`
    is the docker CLI against it, in this process's environment."""

    def __init__(self, cache: Path, run: Path) -> None:
        self.cache, self.dir = cache, run
        self.data = cache / "dockerd"
        self.socket = run / "docker.sock"
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}

    def start(self, timeout: float = 60.0) -> "DockerDaemon":
        args = ["dockerd", f"--data-root={self.data}", f"--exec-root={self.dir / 'exec'}"]
        args += [f"--host=unix://{self.socket}", f"--pidfile={self.dir / 'docker.pid'}"]
        args += ["--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false"]
        args += ["--ip-masq=false", f"--add-runtime=wrapped={RUNC_WRAPPER}"]
        args += ["--default-runtime=wrapped"]
        log_path = self.dir / "dockerd.log"
        log = log_path.open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while self.run("version", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"dockerd did not start:\n{tail}")
            time.sleep(0.2)
        return self

    def run(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("text", True)
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])}: {str(result.stderr)[-3000:]}")
        return result

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0

    def stop(self) -> None:
        """Stop dockerd and undo the mounts it leaves (its network namespace, the data root's
        private bind): a left mount keeps the session's directories, and pytest's cleanup, from
        ever removing them."""
        stop_process(self.process, timeout=30)
        self.process = None
        for mount in _mounts_under(self.data, self.dir):
            subprocess.run(["umount", "--lazy", mount], check=False, capture_output=True)


def _mounts_under(*dirs: Path) -> list[str]:
    """Mount points at or below DIRS, deepest first (/proc/mounts; none where it is absent)."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    roots = [str(d.resolve()) for d in dirs]
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    inside = [p for p in points if any(p == r or p.startswith(r + "/") for r in roots)]
    return sorted(set(inside), key=len, reverse=True)


def import_base_image(daemon: DockerDaemon) -> str:
    """BASE_IMAGE: Debian bookworm (minbase) with python3 and its venv module, the base the images
    are built on here. The rootfs tarball is kept in the daemon's cache (debootstrap takes ~70 s).
    It trusts
    what this machine trusts (its CA bundle, also as pip's `cert`): a TLS-inspecting proxy
    between the builds and PyPI is then accepted as the host accepts it."""
    if daemon.has_image(BASE_IMAGE):
        return BASE_IMAGE
    cache = daemon.cache / "debootstrap"
    cache.mkdir(exist_ok=True)
    tarball = cache / "debian-bookworm-python3.tar"
    if not tarball.is_file():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            rootfs = Path(tmp) / "rootfs"
            packages = "--include=python3,python3-venv,ca-certificates"
            subprocess.run(
                ["debootstrap", "--variant=minbase", packages, "bookworm", rootfs, DEBIAN_MIRROR],
                check=True,
                capture_output=True,
            )
            shutil.copyfile(TRUST_STORE, rootfs / TRUST_STORE.relative_to("/"))
            (rootfs / "etc/pip.conf").write_text(f"[global]\ncert = {TRUST_STORE}\n")
            partial_tar = tarball.with_suffix(".partial")
            subprocess.run(["tar", "-C", rootfs, "-cf", partial_tar, "."], check=True)
            partial_tar.rename(tarball)
    with tarball.open("rb") as stream:
        daemon.run("import", "-", BASE_IMAGE, stdin=stream, text=False)
    return BASE_IMAGE


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Not a line per wheel in the test output."""


class LocalIndexes:
    """This machine's file:// pip indexes (pip's global extra-index-url), each served read-only
    over HTTP on 127.0.0.1, so a build with the host's network installs what the host would
    (here: the lock's torch builds, which are on this disk and not fetched). `urls` is empty
    where pip has no file:// index: the Dockerfiles' defaults apply."""

    def __init__(self) -> None:
        self.servers: list[ThreadingHTTPServer] = []
        self.urls: list[str] = []
        for url in _pip_extra_index_urls():
            parsed = urlparse(url)
            if parsed.scheme != "file":
                continue
            index = Path(parsed.path)  # <dir>/simple; its pages link to ../../files/…
            handler = partial(_QuietHandler, directory=str(index.parent))
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)
            self.urls.append(f"http://127.0.0.1:{server.server_port}/{index.name}")

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _pip_extra_index_urls() -> list[str]:
    """pip's own answer (its environment first, then its config files)."""
    if from_env := os.environ.get("PIP_EXTRA_INDEX_URL"):
        return from_env.split()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.extra-index-url"],
        capture_output=True,
        text=True,
    )
    return result.stdout.split() if result.returncode == 0 else []
