#!/usr/bin/env python3
"""A siteverify-compatible captcha endpoint for tests: accepts the token "pass" (with secret "s3cret"),
rejects everything else, as hCaptcha/Turnstile/reCAPTCHA answer: {"success": bool}. Usage: PORT"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers.get("content-length", 0))).decode())
        ok = form.get("secret") == ["s3cret"] and form.get("response") == ["pass"] and "remoteip" in form
        body = json.dumps({"success": ok}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
