#!/usr/bin/env python3
"""Benchmark 3: process start → first served request (config loaded), and idle RSS.

Starts target/release/vr-dataplane N times with examples/standalone-like config on free
loopback ports, polls the public port with a real request until it is served, and reports the
distribution. Idle RSS is read from /proc/<pid>/status after the first request and 1 s idle.
Usage: bench/startup.py [runs]
"""
import os, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/vr-dataplane")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def request(port, path):
    """One HTTP/1.1 request; returns the status code or None if the port is not accepting."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = c.recv(64)
            return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1") else None
    except OSError:
        return None


def main():
    work = tempfile.mkdtemp()
    media = os.path.join(work, "media")
    os.makedirs(media)
    with open(os.path.join(media, "note.txt"), "w") as f:
        f.write("hello\n")
    cfg = os.path.join(work, "c.yaml")
    with open(cfg, "w") as f:
        f.write(f"""origins:
  - name: files
    matcher: '^/files/(?P<f>[a-z.]+)$'
    sources: [{{kind: local, name: disk, root: {media}, path: '${{f}}'}}]
derivatives:
  mobile: {{width: 640, height: 360}}
""")
    times, rss = [], []
    for _ in range(RUNS):
        port, admin = free_port(), free_port()
        t0 = time.perf_counter()
        p = subprocess.Popen([BIN, "--config", cfg, "--listen", f"127.0.0.1:{port}",
                              "--admin-listen", f"127.0.0.1:{admin}", "--work-dir", os.path.join(work, "spool")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = t0 + 10
            while time.perf_counter() < deadline:
                if request(port, "/files/note.txt") == 200:
                    times.append((time.perf_counter() - t0) * 1000)
                    break
                time.sleep(0.0005)
            else:
                raise SystemExit("data plane did not serve within 10 s")
            time.sleep(1)
            with open(f"/proc/{p.pid}/status") as st:
                for line in st:
                    if line.startswith("VmRSS:"):
                        rss.append(int(line.split()[1]) / 1024)
        finally:
            p.terminate()
            p.wait(timeout=10)
    times.sort()
    print(f"runs={RUNS} start→first served request: p50={statistics.median(times):.1f} ms "
          f"p95={times[int(len(times) * 0.95) - 1]:.1f} ms max={times[-1]:.1f} ms")
    print(f"idle RSS after first request: median={statistics.median(rss):.1f} MiB max={max(rss):.1f} MiB")


if __name__ == "__main__":
    main()
