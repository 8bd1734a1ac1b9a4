#!/usr/bin/env python3
"""Local web sites for the web-target tests and benchmark, on random loopback ports, with certificates
made here (a local CA, a self-signed leaf, an expired leaf, a wrong-host leaf, a legacy server with
TLS 1.0/1.1, CBC and RSA-1024 at @SECLEVEL=0). `planted` has an issue of every category; `twin` is
the correctly configured copy with decoys (publishable keys, documentation examples, SRI hashes, a
catch-all 200 page) that must produce no finding.

Run: websites.py DIR — writes DIR/sites.json ({name: {"url", "http_port"?}, "ca_pem": path}) and
serves until killed. A hostile site (`hostile`) drips, loops and floods for the robustness test."""
import base64
import datetime
import http.server
import json
import os
import socket
import ssl
import sys
import threading
import time
import zlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, AuthorityInformationAccessOID

NOW = datetime.datetime.now(datetime.timezone.utc)


def key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def cert(subject_key, cn, issuer=None, issuer_key=None, days=(-1, 365), sans=("127.0.0.1",), ca=False, ocsp=None, hash_alg=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW + datetime.timedelta(days=days[0])).not_valid_after(NOW + datetime.timedelta(days=days[1])))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                                          decipher_only=False), critical=True)
    else:
        alt = [x509.IPAddress(__import__("ipaddress").ip_address(s)) if s[0].isdigit() else x509.DNSName(s) for s in sans]
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    if ocsp:
        b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                                                                     x509.UniformResourceIdentifier(ocsp))]), critical=False)
    return b.sign(issuer_key or subject_key, hash_alg or hashes.SHA256())


def sha1_leaf(d, leaf_key, ca, ca_key):
    """A leaf signed with SHA-1 by the CA: the cryptography package refuses SHA-1 signatures, OpenSSL's
    command line still makes them."""
    import subprocess
    ca_cert, ca_keyfile = write_pair(d, "ca-signing", ca, ca_key)
    _, keyfile = write_pair(d, "legacy", ca, leaf_key)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
           .sign(leaf_key, hashes.SHA256()))
    csr_path, ext_path, out = os.path.join(d, "legacy.csr"), os.path.join(d, "legacy.ext"), os.path.join(d, "legacy.crt")
    open(csr_path, "wb").write(csr.public_bytes(serialization.Encoding.PEM))
    open(ext_path, "w").write("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr_path, "-CA", ca_cert, "-CAkey", ca_keyfile, "-CAcreateserial", "-sha1", "-days", "365",
                    "-extfile", ext_path, "-out", out], check=True, capture_output=True)
    return out, keyfile


def pem(c):
    return c.public_bytes(serialization.Encoding.PEM)


def write_pair(d, name, c, k):
    cp, kp = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    open(cp, "wb").write(pem(c))
    open(kp, "wb").write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    return cp, kp


def github_token(body):
    """A ghp_ token whose CRC32 suffix is right (as GitHub issues them)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    n, out = zlib.crc32(body.encode()), ""
    while n:
        out = alphabet[n % 62] + out
        n //= 62
    return "ghp_" + body + out.rjust(6, "0")


def jwt(claims):
    enc = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc(claims)}.{base64.urlsafe_b64encode(os.urandom(32)).rstrip(b'=').decode()}"


# Planted secrets are made at run time (never stored in the repository as literals a scanner would flag).
AWS_ID = "AKIA" + "QX7Z2M4K9P3LWT6R"
AWS_SECRET = "Zt9q" + "Xb3Lk8Wm2Rv5Np7Hs4Jd6Fg1Yc0Ue8Ia3Oo5Pq2"
STRIPE = "sk_live_" + "51HvZq2KpL8mN3rT6wX9yB4cD7fG0hJ"
PRIVATE_KEY = key(2048).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()).decode()
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
GHP = github_token("R7x2Kq9LmP4vN8sT3wY6zB1cD5fG0h")
PG_URL = "postgres://app:" + "S3cr3t-pw-91x" + "@db.internal:5432/app"
SERVICE_JWT = jwt({"role": "service_role", "iss": "supabase"})


class Site(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kind = "twin"
    http_port = 0
    site_dir = ""
    server_version = "nginx"
    sys_version = ""

    def log_message(self, *a):
        pass

    def send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        body = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_TRACE(self):
        if self.kind == "planted":
            echo = self.requestline + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
            return self.send(200, echo, "message/http")
        self.send(405, "method not allowed", "text/plain")

    def do_GET(self):
        getattr(self, f"{self.kind}_get")()

    # --- the correctly configured twin, with decoys ---------------------------------------------------
    TWIN_HEADERS = [("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload"),
                    ("Content-Security-Policy", "default-src 'self'; script-src 'self' 'nonce-r4nd0m'; object-src 'none'; frame-ancestors 'none'"),
                    ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                    ("Referrer-Policy", "strict-origin-when-cross-origin"), ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
                    ("Cross-Origin-Opener-Policy", "same-origin"), ("Cross-Origin-Resource-Policy", "same-origin")]

    def twin_get(self):
        path = self.path.split("?")[0]
        if path == "/.well-known/vigil-verification.txt":
            token = os.path.join(self.site_dir, "verification.txt")
            if os.path.exists(token):
                return self.send(200, open(token).read(), "text/plain")
            return self.send(404, "no token", "text/plain")
        h = list(self.TWIN_HEADERS)
        origin = self.headers.get("Origin")
        if origin == "https://app.example":
            h += [("Access-Control-Allow-Origin", "https://app.example"), ("Access-Control-Allow-Credentials", "true"), ("Vary", "Origin")]
        if path == "/static/app.js":
            js = ("// publishable keys and documentation examples are not secrets\n"
                  "const stripe = 'pk_live_51HvZq2KpL8mN3rT6wX9yB4cD7fG0hJ';\n"
                  "const example = { id: 'AKIAIOSFODNN7EXAMPLE', secret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };\n"
                  "const placeholder = 'sk_live_XXXXXXXXXXXXXXXXXXXXXXXX';\n"
                  f"const anon = '{jwt({'role': 'anon', 'iss': 'supabase'})}';\n"
                  "const fakeToken = 'ghp_R7x2Kq9LmP4vN8sT3wY6zB1cD5fG0h000000';\n"
                  "const db = 'postgres://app:${DB_PASSWORD}@db.internal:5432/app';\n"
                  "const id = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';\n")
            return self.send(200, js, "application/javascript", h)
        if path in ("/", "/about", "/index.html") or True:
            # A single-page app: every unknown path gets the index page with 200 (the soft-404 decoy).
            page = ("<!doctype html><html><head><title>Twin</title>"
                    "<link rel='stylesheet' href='/static/app.css' integrity='sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC'>"
                    "<link rel='canonical' href='http://twin.example/'>"
                    "</head><body><h1>Twin</h1><a href='/about'>About</a> <a href='http://example.org/'>elsewhere</a>"
                    "<img src='data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='>"
                    "<script nonce='r4nd0m' src='/static/app.js'></script></body></html>")
            cookies = [("Set-Cookie", "__Host-session=7f3a9c; Path=/; Secure; HttpOnly; SameSite=Lax"),
                       ("Set-Cookie", "prefs=dark; Path=/; Secure; SameSite=Lax")] if path == "/" else []
            return self.send(200, page, headers=h + cookies)

    # --- every category planted ------------------------------------------------------------------------
    def planted_get(self):
        path = self.path.split("?")[0]
        query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
        if path == "/" and "next" in query:
            from urllib.parse import unquote
            self.send_response(302)
            self.send_header("Location", unquote(query["next"]))
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if path == "/" and "q" in query:
            from urllib.parse import unquote
            return self.send(200, f"<html><body>Results for {unquote(query['q'])}</body></html>")
        h = [("Server", "Apache/2.4.41 (Ubuntu)"), ("X-Powered-By", "PHP/7.4.3"), ("Strict-Transport-Security", "max-age=300"),
             ("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline' *"), ("Referrer-Policy", "unsafe-url")]
        origin = self.headers.get("Origin")
        if origin:
            h += [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true")]
        files = {
            "/.git/config": ("[core]\n\trepositoryformatversion = 0\n\tbare = false\n", "text/plain"),
            "/.git/HEAD": ("ref: refs/heads/main\n", "text/plain"),
            "/.env": (f"APP_ENV=production\nDB_PASSWORD=hunter2-prod\nAWS_ACCESS_KEY_ID={AWS_ID}\n", "text/plain"),
            "/backup.zip": (b"PK\x03\x04" + os.urandom(64), "application/zip"),
            "/dump.sql": ("-- MySQL dump 10.13\nCREATE TABLE users (id int, email text);\nINSERT INTO users VALUES (1,'a@b.c');\n", "text/plain"),
            "/wp-config.php.bak": ("<?php\ndefine('DB_PASSWORD', 'hunter2');\n", "text/plain"),
            "/server-status": ("<html><head><title>Apache Status</title></head><body><h1>Apache Server Status for 127.0.0.1</h1>Server uptime: 3 days</body></html>", "text/html"),
            "/uploads/": ("<html><head><title>Index of /uploads</title></head><body><h1>Index of /uploads</h1><a href='a.pdf'>a.pdf</a></body></html>", "text/html"),
            "/.DS_Store": (b"\x00\x00\x00\x01Bud1" + b"\x00" * 64, "application/octet-stream"),
            "/phpmyadmin/": ("<html><head><title>phpMyAdmin</title></head><body>login</body></html>", "text/html"),
            "/actuator/env": ('{"activeProfiles":["prod"],"propertySources":[{"name":"systemEnvironment"}]}', "application/json"),
            "/crossdomain.xml": ('<?xml version="1.0"?><cross-domain-policy><allow-access-from domain="*"/></cross-domain-policy>', "text/xml"),
            "/static/app.js": (f"const cfg = {{ awsAccessKeyId: '{AWS_ID}', awsSecretAccessKey: '{AWS_SECRET}' }};\n"
                               f"const stripe = '{STRIPE}';\nconst gh = '{GHP}';\nconst admin = '{SERVICE_JWT}';\n"
                               "//# sourceMappingURL=app.js.map\n", "application/javascript"),
            "/static/app.js.map": (json.dumps({"version": 3, "sources": ["src/keys.ts"], "mappings": "AAAA",
                                               "sourcesContent": ["export const signingKey = `" + PRIVATE_KEY + "`;\n"]}), "application/json"),
            "/about": (f"<html><body><p>ops</p><script>const hook = '{SLACK}'; const db = '{PG_URL}';</script></body></html>", "text/html"),
        }
        if path in files:
            body, ctype = files[path]
            return self.send(200, body, ctype, h)
        if path == "/":
            page = ("<!doctype html><html><head><title>Planted</title></head><body><h1>Planted</h1><a href='/about'>About</a>"
                    f"<script src='http://127.0.0.1:{self.http_port}/legacy.js'></script><script src='/static/app.js'></script></body></html>")
            cookies = [("Set-Cookie", "sessionid=38afes7a8; Path=/"), ("Set-Cookie", "__Host-token=x1; Secure; Path=/app; SameSite=Lax")]
            return self.send(200, page, headers=h + cookies)
        return self.send(404, "<html><body>not found</body></html>", headers=h)

    # --- plain HTTP companions: the planted one serves content, the twin's redirects -------------------
    def plainplanted_get(self):
        self.send(200, "<html><body>insecure</body></html>" if self.path != "/legacy.js" else "console.log(1)")

    def plaintwin_get(self):
        self.send_response(301)
        self.send_header("Location", f"https://127.0.0.1:{self.https_port}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # --- hostile: endless body, slow drip, redirect loop, link flood, huge headers ---------------------
    def hostile_get(self):
        path = self.path.split("?")[0]
        if path == "/":
            links = "".join(f"<a href='/p{i}'>p{i}</a><script src='/s{i}.js'></script>" for i in range(10000))
            return self.send(200, "<html><body>" + links + "</body></html>")
        if path.startswith("/p") or path == "/.git/config":
            self.send_response(302)
            self.send_header("Location", "/loop" + path)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if path.startswith("/loop"):
            self.send_response(302)
            self.send_header("Location", path[5:] or "/")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if path.endswith(".js"):
            # An endless body.
            self.send_response(200)
            self.send_header("Content-Type", "application/javascript")
            self.end_headers()
            try:
                for _ in range(100000):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass
            return
        if path == "/.env":
            # A slow drip: one byte a second.
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(120):
                    self.wfile.write(b"A")
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass
            return
        self.send_response(200)
        for i in range(90):
            self.send_header(f"X-Filler-{i}", "y" * 700)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def serve(handler_kind, context=None, **attrs):
    cls = type(f"Site_{handler_kind}", (Site,), {"kind": handler_kind, **attrs})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), cls)
    srv.daemon_threads = True
    if context:
        srv.socket = context.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def tls_context(certfile, keyfile, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_3, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version, ctx.maximum_version = minimum, maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    ca_key = key()
    ca = cert(ca_key, "Vigil Test CA", ca=True, days=(-30, 3650))
    ca_path = os.path.join(d, "ca.pem")
    open(ca_path, "wb").write(pem(ca))
    good_key, weak_key = key(), key(1024)
    pairs = {
        "twin": (cert(good_key, "127.0.0.1", ca, ca_key), good_key),
        "planted": (cert(good_key, "127.0.0.1", ca, ca_key, ocsp="http://127.0.0.1:9/ocsp"), good_key),
        "self_signed": (cert(good_key, "127.0.0.1"), good_key),
        "expired": (cert(good_key, "127.0.0.1", ca, ca_key, days=(-400, -5)), good_key),
        "wrong_host": (cert(good_key, "other.example", ca, ca_key, sans=("other.example",), days=(-1, 12)), good_key),
    }
    files = {n: write_pair(d, n, c, k) for n, (c, k) in pairs.items()}
    files["legacy"] = sha1_leaf(d, weak_key, ca, ca_key)
    sites = {"ca_pem": ca_path}
    plain_planted, pp_port = serve("plainplanted")
    _, planted_port = serve("planted", tls_context(*files["planted"], maximum=ssl.TLSVersion.TLSv1_2,
                                                   ciphers="ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:NULL-SHA:@SECLEVEL=0"), http_port=pp_port)
    sites["planted"] = {"url": f"https://127.0.0.1:{planted_port}/", "http_port": pp_port}
    _, twin_port = serve("twin", tls_context(*files["twin"], ciphers="ECDHE+AESGCM:ECDHE+CHACHA20"), site_dir=d)
    plain_twin, pt_port = serve("plaintwin", https_port=twin_port)
    sites["twin"] = {"url": f"https://127.0.0.1:{twin_port}/", "http_port": pt_port}
    for name in ("self_signed", "expired", "wrong_host"):
        _, port = serve("twin", tls_context(*files[name], ciphers="ECDHE+AESGCM"))
        sites[name] = {"url": f"https://127.0.0.1:{port}/"}
    _, legacy_port = serve("twin", tls_context(*files["legacy"], minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1_1,
                                               ciphers="AES128-SHA:@SECLEVEL=0"))
    sites["legacy"] = {"url": f"https://127.0.0.1:{legacy_port}/"}
    _, hostile_port = serve("hostile")
    sites["hostile"] = {"url": f"http://127.0.0.1:{hostile_port}/"}
    tmp = os.path.join(d, "sites.json.tmp")
    json.dump(sites, open(tmp, "w"))
    os.rename(tmp, os.path.join(d, "sites.json"))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
