#!/usr/bin/env python3
"""A loopback HTTP proxy in front of the emulator that injects the faults real AWS
shows: slow answers, throttling and server errors, dropped and reset connections.

The tests point stamp (and so terraform, packer and the AWS CLI, through
AWS_ENDPOINT_URL) at this proxy instead of at moto. Every request is forwarded to
the emulator unless a rule matches it. Rules live in a JSON file, read again on
every request, so a test can arm a fault in the middle of a run:

    [{"method": "PUT", "path": "/stamp-state/", "body": null, "action": "delay",
      "seconds": 12, "times": 1, "after": 0}]

- method, path, body, target, agent: optional; a rule matches a request whose
  method equals `method` and whose path, body, X-Amz-Target and User-Agent headers
  contain the given substrings (`body` finds query-API actions such as
  "Action=DescribeImages"; `agent` tells the callers apart: "aws-sdk-rust" is
  stamp's own SDK, "aws-cli/" the AWS CLI, "aws-sdk-go" terraform and packer).
- action: "delay" (wait `seconds`, then forward), "status" (answer `status` with
  the AWS error `code` and `message`, in the answering API's format), "drop"
  (close the connection without an answer) or "reset" (close it with a TCP RST).
- times: how many matching requests the rule applies to (default: all of them);
  after: how many matching requests to let through first.

Every fault applied is appended to the --log file as one JSON line, so a test can
check that the fault it meant to inject really happened. With --requests, every
request is appended to that file as one JSON line (method, path, the service its
signature names, X-Amz-Target, the query API's Action, the caller's User-Agent):
tests/support/iam.rs turns them into the IAM actions they need.

Usage: fault_proxy.py --upstream http://127.0.0.1:5000 --rules rules.json
       --log faults.jsonl --port-file port   (listens on a free loopback port)
"""

import argparse
import http.client
import json
import os
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class Rules:
    """The rules file, re-read when it changes, and how often each rule matched."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.stamp = None
        self.rules = []
        self.seen = {}

    def current(self):
        try:
            st = os.stat(self.path)
            key = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return []
        if key != self.stamp:
            try:
                with open(self.path, encoding="utf-8") as f:
                    rules = json.load(f)
            except (OSError, ValueError):
                return self.rules  # half-written: keep the last good rules
            self.stamp, self.rules, self.seen = key, rules, {}
        return self.rules

    def pick(self, method, path, body, target, agent=""):
        with self.lock:
            for i, r in enumerate(self.current()):
                if r.get("method") and r["method"] != method:
                    continue
                if r.get("path") and r["path"] not in path:
                    continue
                if r.get("body") and r["body"] not in body:
                    continue
                if r.get("target") and r["target"] not in target:
                    continue
                if r.get("agent") and r["agent"] not in agent:
                    continue
                n = self.seen.get(i, 0)
                self.seen[i] = n + 1
                if n < r.get("after", 0):
                    continue
                times = r.get("times")
                if times is not None and n - r.get("after", 0) >= times:
                    continue
                return i, r
        return None, None


def error_body(code, message, body, target):
    """An AWS error in the format of the API that was called."""
    if target:
        return "application/x-amz-json-1.1", json.dumps({"__type": code, "message": message})
    if "Action=" in body:
        fields = urllib.parse.parse_qs(body)
        if fields.get("Version", [""])[0].startswith("2016-11-15"):  # EC2
            return "text/xml", (
                f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                "<RequestID>fault-proxy</RequestID></Response>"
            )
        return "text/xml", (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>fault-proxy</RequestId></ErrorResponse>"
        )
    return "application/xml", (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>fault-proxy</RequestId></Error>"
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def describe(self, text, target, agent):
        """What the request calls, for --requests."""
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        auth = self.headers.get("Authorization", "")
        scope = ""
        if "Credential=" in auth:
            scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        elif "X-Amz-Credential" in query:
            scope = query["X-Amz-Credential"][0]
        parts = scope.split("/")
        service = parts[3] if len(parts) >= 5 else ""
        action = query.get("Action", [""])[0]
        if not action and "Action=" in text and not target:
            action = urllib.parse.parse_qs(text).get("Action", [""])[0]
        return {"method": self.command, "path": self.path, "service": service, "target": target,
                "action": action, "agent": agent.split(" ", 1)[0], "time": time.time()}

    def handle_any(self):
        body = self.read_body()
        text = body[:4096].decode("utf-8", "replace")
        target = self.headers.get("X-Amz-Target", "")
        agent = self.headers.get("User-Agent", "")
        self.server.record_request(self.describe(text, target, agent))
        i, rule = self.server.rules.pick(self.command, self.path, text, target, agent)
        if rule is not None:
            action = rule.get("action", "status")
            self.server.record({"rule": i, "action": action, "method": self.command, "path": self.path, "time": time.time()})
            if action == "delay":
                time.sleep(float(rule.get("seconds", 1)))
            elif action == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            elif action == "reset":
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            else:
                ctype, payload = error_body(rule.get("code", "InternalError"), rule.get("message", "injected by the test's fault proxy"), text, target)
                data = payload.encode()
                self.send_response(int(rule.get("status", 500)))
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "fault-proxy")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return
        self.forward(body)

    def forward(self, body):
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
        headers["Content-Length"] = str(len(body))
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            self.send_error(502, f"fault proxy: upstream unreachable: {e}")
            return
        finally:
            conn.close()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, upstream, rules, log, requests=None):
        super().__init__(addr, Handler)
        self.upstream = urllib.parse.urlparse(upstream)
        self.rules = Rules(rules)
        self.log_path = log
        self.log_lock = threading.Lock()
        self.requests_path = requests

    def record_request(self, entry):
        if self.requests_path:
            with self.log_lock, open(self.requests_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def record(self, entry):
        if self.log_path:
            with self.log_lock, open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--log")
    ap.add_argument("--requests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), a.upstream, a.rules, a.log, a.requests)
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, a.port_file)
    print(f"listening {port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
