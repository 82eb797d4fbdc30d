#!/usr/bin/python3
"""run_e2e.py - runs the browser tests (node:test + playwright-core driving
Debian's headless Chromium) against a real gateway and processor.

The daemons are started the one way every integration test starts them
(tests/integration/pxtest.py: this build's binaries, the ctest `stack`
fixture's Kafka and Redis, topics and keys of this run only); node gets
their addresses in the environment:

  PX_E2E_BASE      http://127.0.0.1:<port> of the gateway (dev mode on)
  PX_E2E_CONTROL   http://127.0.0.1:<port> of this driver's control server
  PX_E2E_SHOTS     directory for the screenshots
  PX_E2E_TENANT    a tenant of this run only

The control server lets a test do what only the driver can:
  POST /gateway/kill                       SIGKILL the gateway
  POST /gateway/start                      start it again on the same port; 200 once ready
  POST /lifecycle {"key","type","busy_by"?,"version"?}   presencectl produce lifecycle

Usage: run_e2e.py NAME TEST.mjs...   (exit 0 only if node passed and every
daemon stopped cleanly, i.e. ASan/UBSan found nothing).
"""
import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ["PX_SOURCE_DIR"], "tests", "integration"))
import pxtest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_TIMEOUT_S = 240


class Control(http.server.BaseHTTPRequestHandler):
    stack = None
    lock = threading.Lock()

    def log_message(self, fmt, *args):
        sys.stderr.write("control: " + (fmt % args) + "\n")

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.reply(400, {"error": "body is not JSON"})
        st = Control.stack
        try:
            with Control.lock:
                if self.path == "/gateway/kill":
                    gw = next(d for d in st.daemons if d.name == "gateway")
                    gw.proc.kill()
                    gw.proc.wait()
                    st.retire(gw)
                    return self.reply(200, {"killed": gw.proc.pid})
                if self.path == "/gateway/start":
                    start_gateway(st)
                    return self.reply(200, {"ready": True})
                if self.path == "/lifecycle":
                    args = [os.path.join(st.build, "tools", "presencectl"), "produce", "lifecycle",
                            "--key", req["key"], "--type", req["type"]] + st.common()
                    if req.get("busy_by"):
                        args += ["--busy-by", req["busy_by"]]
                    if req.get("version") is not None:
                        args += ["--version", str(req["version"])]
                    if req.get("write_id"):
                        args += ["--write-id", req["write_id"]]
                    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
                    if r.returncode != 0:
                        return self.reply(500, {"error": r.stderr[-2000:]})
                    return self.reply(200, {"out": r.stdout.strip()})
            return self.reply(404, {"error": "no such control route"})
        except Exception as e:  # the test sees the reason; the driver goes on
            return self.reply(500, {"error": f"{type(e).__name__}: {e}"})


def start_gateway(stack):
    stack.start_gateway("--set", "auth.dev_mode=true", "--set", "limits.lock_timeout_ms=4000")
    stack.wait_ready()


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: run_e2e.py NAME TEST.mjs...")
    name, tests = sys.argv[1], sys.argv[2:]
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        sys.exit(f"{name}: FAIL: tests/e2e/node_modules is missing; run scripts/setup.sh (npm ci)")
    if not os.access("/usr/bin/chromium", os.X_OK):
        sys.exit(f"{name}: FAIL: /usr/bin/chromium is missing; run scripts/setup.sh")

    stack = pxtest.Stack(name)
    Control.stack = stack
    ok = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shots = os.path.join(stack.build, "e2e-screenshots")
    os.makedirs(shots, exist_ok=True)
    try:
        stack.start_processor()
        start_gateway(stack)
        env = dict(os.environ,
                   PX_E2E_BASE=f"http://127.0.0.1:{stack.http_port}",
                   PX_E2E_CONTROL=f"http://127.0.0.1:{server.server_address[1]}",
                   PX_E2E_SHOTS=shots,
                   PX_E2E_TENANT=pxtest.unique("e2e"))
        t0 = time.monotonic()
        r = subprocess.run(["node", "--test", "--test-concurrency=1", "--test-reporter=spec"] + tests,
                           cwd=HERE, env=env, timeout=NODE_TIMEOUT_S)
        print(f"{name}: node finished with {r.returncode} in {time.monotonic() - t0:.1f}s", flush=True)
        ok = r.returncode == 0
    finally:
        server.shutdown()
        ok = pxtest.finish(stack, ok)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
