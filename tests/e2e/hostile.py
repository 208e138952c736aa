"""A hostile Portal for the tests: an HTTPS server on 127.0.0.1 in front of a real Portal misp-sim.

Every request is forwarded to the misp-sim unchanged, except those a *bend* answers: a bend is a
function of the request that returns None (forward as usual) or an answer of its own, which it may
build from the real answer (`portal.forward(req)`) with something bent: a swapped uuid, a foreign
event, a lying filterEventIdsForPush, an absurd header or timestamp, a huge or endless body. This is
the peer of docs/security.md's threat model: another organisation's server that may lie.

Nothing here imitates sgsync; the Portal's honest behaviour is misp-sim's."""
import json
import ssl
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers of the upstream answer that travel back (hop-by-hop and length headers are recomputed).
PASSED_HEADERS = ("content-type", "etag", "location", "x-result-count", "retry-after")


class Request:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None


class Answer:
    """An answer: status, headers and a body given as bytes, or as an iterable of byte chunks that
    is sent with chunked transfer coding (an endless generator makes an endless body)."""

    def __init__(self, status, body=b"", headers=None):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body

    @staticmethod
    def of_json(status, value, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return Answer(status, json.dumps(value).encode(), h)

    def json(self):
        return json.loads(self.body) if self.body else None


class HostilePortal:
    def __init__(self, upstream, pki):
        self.upstream = upstream  # a harness.Sim: the honest Portal
        self.bends = []
        self.seen = []  # (method, path) of every request, bent or not
        self.lock = threading.Lock()
        self.upstream_ctx = ssl.create_default_context(cafile=pki.ca)
        portal = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with portal.lock:
                    portal.seen.append((req.method, req.path))
                    bends = list(portal.bends)
                answer = None
                for bend in bends:
                    answer = bend(req)
                    if answer is not None:
                        break
                if answer is None:
                    answer = portal.forward(req)
                self.send(answer)

            def send(self, answer):
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                if isinstance(answer.body, (bytes, bytearray)):
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(answer.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in answer.body:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self.close_connection = True  # the client gave up on the body: as it should

            do_GET = do_POST = do_HEAD = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.cert, pki.key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bend(self, fn):
        with self.lock:
            self.bends.append(fn)
        return fn

    def clear(self):
        with self.lock:
            self.bends.clear()
            self.seen.clear()

    def forward(self, req):
        """The honest Portal's answer to `req`."""
        r = urllib.request.Request(self.upstream.url + req.path, data=req.body if req.method == "POST" else None,
                                   method=req.method)
        for k, v in req.headers.items():
            if k in ("host", "content-length", "accept-encoding", "connection", "transfer-encoding"):
                continue
            r.add_header(k, v)
        try:
            with urllib.request.urlopen(r, context=self.upstream_ctx, timeout=120) as resp:
                status, headers, body = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, e.headers, e.read()
        return Answer(status, body, {k: v for k, v in headers.items() if k.lower() in PASSED_HEADERS})

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def route(path):
    """The MISP route of a request path: "/events/view/U/deleted[]:1" -> "/events/view"."""
    parts = path.split("?")[0].split("/")
    return "/" + "/".join(p.split(".")[0] for p in parts[1:3])
