"""Image supply-chain benchmarks. Prints one JSON line per run, then min/median/max.

- ``verify``: one-pass SHA-256 + BLAKE2b-512 of a 2 GiB file (gitfirm hashes in two threads)
  against ``sha256sum`` and ``b2sum`` run in parallel on the same (page-cached) file, so
  both sides may use two cores. Target ratio >= 1.0.
- ``serve``: 50 concurrent loopback ``curl`` downloads of a 1 GiB verified image from the
  distribution server (uvicorn, one process) against nginx serving the same file.
  Target ratio >= 0.9. Without nginx the line says so and has no ratio. Every download
  must succeed with the whole file, or the bench fails.

Each runs 3 times. Every file lives in a temporary directory that is deleted afterwards.
Run: ``.venv/bin/python -m bench.images_bench [--only verify|serve]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import RUNS, emit, fail, free_port, summarize

GIB = 1 << 30
CLIENTS = 50
ROOT = Path(__file__).resolve().parents[1]
"""The project root: the serve child runs as ``python -m bench.images_bench`` from here."""


def _write_file(path: Path, size: int) -> None:
    block = os.urandom(8 << 20)
    with path.open("wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - start


def _parallel(*argvs: list[str]) -> float:
    """Seconds for the commands run side by side, each to completion."""
    start = time.perf_counter()
    procs = [subprocess.Popen(a, stdout=subprocess.DEVNULL) for a in argvs]
    codes = [p.wait(timeout=600) for p in procs]
    if any(codes):
        fail(f"verify: reference tools failed with exit codes {codes}")
    return time.perf_counter() - start


def bench_verify(tmp: Path) -> list[dict[str, Any]]:
    """Hash a 2 GiB file RUNS times each way; one record per run."""
    from reconciler.images.hashing import hash_file

    path = tmp / "verify.bin"
    size = 2 * GIB
    _write_file(path, size)
    _timed(["cat", str(path)])  # warm the page cache for both sides
    runs = []
    for run in range(1, RUNS + 1):
        reference = _parallel(["sha256sum", str(path)], ["b2sum", str(path)])
        start = time.perf_counter()
        hash_file(path)
        ours = time.perf_counter() - start
        mb = size / 1e6
        runs.append(
            {
                "mb_per_s": round(mb / ours, 1),
                "reference_mb_per_s": round(mb / reference, 1),
                "ratio": round(reference / ours, 3),
            }
        )
        emit({"bench": "verify", "bytes": size, "reference": "parallel", "run": run, **runs[-1]})
    path.unlink()
    return runs


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def _download_all(url: str) -> float:
    """Seconds for CLIENTS concurrent curl downloads of ``url`` to /dev/null."""
    start = time.perf_counter()
    argv = ["curl", "-sf", "--max-time", "600", "-o", "/dev/null", "-w", "%{size_download}", url]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(CLIENTS)]
    results = [(p.communicate(timeout=660)[0], p.returncode) for p in procs]
    elapsed = time.perf_counter() - start
    failed = [code for out, code in results if code or out.strip() != str(GIB)]
    if failed:
        fail(f"serve: {len(failed)} of {CLIENTS} downloads failed or came back short ({url})")
    return elapsed


def _prepare_image(tmp: Path) -> tuple[Path, str, str]:
    """A signed 1 GiB image, fetched and verified into a store; returns (cache, sha, file)."""
    from reconciler.clock import SystemClock
    from reconciler.images import minisign
    from reconciler.images.hashing import hash_file
    from reconciler.images.store import ImageStore
    from reconciler.images.verify import verify_image
    from reconciler.model.kinds import Image, TrustPolicy

    name = "vyos-1.4.3-generic-amd64.iso"
    src = tmp / "src"
    src.mkdir()
    path = src / name
    _write_file(path, GIB)
    key = minisign.generate_keypair()
    digests = hash_file(path)
    sig = minisign.sign_digest(digests.blake2b, key, minisign.trusted_comment_for(name, 0))
    (src / f"{name}.minisig").write_text(minisign.format_signature(sig))
    image = Image.model_validate(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "Image",
            "metadata": {"name": "bench"},
            "spec": {
                "version": "1.4.3",
                "channel": "production",
                "platforms": [{"arch": "amd64"}],
                "source": {"url": path.as_uri()},
                "sha256": digests.sha256,
                "size": GIB,
                "signature": {"minisign": {"key": "bench"}},
            },
        }
    )
    trust = TrustPolicy.model_validate(
        {
            "apiVersion": "gitfirm.io/v1",
            "kind": "TrustPolicy",
            "metadata": {"name": "bench"},
            "spec": {
                "channels": ["production"],
                "minisign": [{"name": "bench", "publicKey": key.public.to_base64()}],
            },
        }
    )
    verified = verify_image(image, path, [trust], minisig=src / f"{name}.minisig", digests=digests)
    store = ImageStore(tmp / "cache", SystemClock())
    store.add(verified, path, (".minisig", src / f"{name}.minisig"))
    return tmp / "cache", verified.sha256, name


def _serve_child(cache: str, port: str, secret_hex: str) -> None:
    import uvicorn

    from reconciler.clock import SystemClock
    from reconciler.images.serve import DistributionServer
    from reconciler.images.store import ImageStore
    from reconciler.images.tokens import TokenSigner

    clock = SystemClock()
    server = DistributionServer(
        ImageStore(Path(cache), clock),
        TokenSigner(bytes.fromhex(secret_hex), clock=clock),
        clock=clock,
    )
    uvicorn.run(server.app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False)


def _ours(cache: Path, sha: str, secret: bytes) -> float:
    from reconciler.clock import SystemClock
    from reconciler.images.serve import DistributionServer
    from reconciler.images.store import ImageStore
    from reconciler.images.tokens import TokenSigner

    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.images_bench", "--serve-child", str(cache), str(port),
         secret.hex()],
        cwd=ROOT,
    )  # fmt: skip
    try:
        _wait_port(port)
        clock = SystemClock()
        server = DistributionServer(
            ImageStore(cache, clock), TokenSigner(secret, clock=clock), clock=clock
        )
        url = server.url_for(f"http://127.0.0.1:{port}", "bench", sha, timedelta(hours=1))
        elapsed = _download_all(url)
        print(f"gitfirm: {elapsed:.1f} s", file=sys.stderr)
        return elapsed
    finally:
        child.terminate()
        child.wait(timeout=30)


def _nginx(root: Path, name: str, tmp: Path) -> float:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    prefix = tmp
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    # Workers of a root master run as "nobody", who cannot read a private temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""
{user}
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
"""
    )
    child = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
    try:
        _wait_port(port)
        return _download_all(f"http://127.0.0.1:{port}/{name}")
    finally:
        child.terminate()
        child.wait(timeout=30)


def bench_serve(tmp: Path) -> list[dict[str, Any]]:
    """RUNS rounds of downloads from gitfirm, then nginx; one record per run."""
    cache, sha, name = _prepare_image(tmp)
    total_mb = CLIENTS * GIB / 1e6
    have_nginx = shutil.which("nginx") or Path("/usr/sbin/nginx").exists()
    blob_dir = tmp / "www"
    if have_nginx:
        blob_dir.mkdir()
        os.link(cache / "blobs" / "sha256" / sha, blob_dir / name)
    runs = []
    for run in range(1, RUNS + 1):
        ours = _ours(cache, sha, os.urandom(32))
        record: dict[str, Any] = {"mb_per_s": round(total_mb / ours, 1)}
        if have_nginx:
            theirs = _nginx(blob_dir, name, tmp / f"nginx-{run}")
            record["nginx_mb_per_s"] = round(total_mb / theirs, 1)
            record["ratio"] = round(theirs / ours, 3)
        else:
            record["note"] = "nginx is not installed (apt-get install nginx); no ratio"
        runs.append(record)
        emit({"bench": "serve", "clients": CLIENTS, "bytes_each": GIB, "run": run, **record})
    return runs


def main(argv: list[str]) -> None:
    """Run the benchmarks (both, or the one ``--only`` names) in a temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["verify", "serve"], help="run one benchmark")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gitfirm-images-bench-") as tmp:
        if args.only in (None, "verify"):
            runs = bench_verify(Path(tmp))
            for line in summarize(runs, ("ratio", "mb_per_s"), bench="verify"):
                emit(line)
        if args.only in (None, "serve"):
            runs = bench_serve(Path(tmp))
            figures = ("ratio", "mb_per_s") if "ratio" in runs[0] else ("mb_per_s",)
            for line in summarize(runs, figures, bench="serve", clients=CLIENTS):
                emit(line)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-child":
        _serve_child(*sys.argv[2:])
    else:
        main(sys.argv[1:])
