"""A real git remote over smart HTTP for the tests: `git http-backend` (git's own CGI program) behind a small
threaded HTTP server on a random loopback port. Pushes are accepted; every request must carry the token as git
sends it (`Authorization: Basic x-access-token:<token>`), anything else gets 401."""
import base64
import http.server
import os
import subprocess
import threading


class GitHTTPServer:
    def __init__(self, root, token):
        self.root, self.token = root, token
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def handle_any(self):
                want = "Basic " + base64.b64encode(f"x-access-token:{outer.token}".encode()).decode()
                outer.requests.append((self.command, self.path, self.headers.get("Authorization") == want))
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                body = b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                elif self.headers.get("Content-Length"):
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                env = dict(os.environ, GIT_PROJECT_ROOT=outer.root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path, QUERY_STRING=query,
                           REQUEST_METHOD=self.command, CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)),
                           REMOTE_USER="vigil", REMOTE_ADDR="127.0.0.1", HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""),
                           GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
                out = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, timeout=60).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status, headers = 200, []
                for line in head.split(b"\r\n"):
                    k, _, v = line.decode().partition(":")
                    if k.lower() == "status":
                        status = int(v.strip().split()[0])
                    elif k:
                        headers.append((k, v.strip()))
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = handle_any
            do_POST = handle_any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def bare_remote(source, root, name):
    """A bare copy of `source` under `root`, accepting pushes over HTTP."""
    path = os.path.join(root, name)
    subprocess.run(["git", "clone", "-q", "--bare", source, path], check=True)
    subprocess.run(["git", "-C", path, "config", "http.receivepack", "true"], check=True)
    return path
