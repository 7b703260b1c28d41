#!/usr/bin/env python3
"""A small client of the mzhub funeral partner API (docs/api/partner.yaml) in Python 3.

It signs its requests with MZ-HMAC-SM3 (docs/signing.md), pushes a hall, reads it back,
updates it with If-Match, then provokes every problem the spec documents that a client can
cause and prints each answer. It exits 1 when an answer is not the documented one.

Standard library only where hashlib offers SM3 (Python linked with OpenSSL 1.1.1 or 3, as on
Debian 12); otherwise it uses the gmssl package from PyPI (pip install gmssl).

    MZ_BASE_URL=http://127.0.0.1:8080 MZ_KEY_ID=... MZ_SECRET_HEX=... python3 mzhub_example.py

MZ_BASE_URL is the hub's base URL without /partner/v1 (for the sandbox add its prefix:
https://host/sandbox). MZHUB_MAX_BODY_BYTES is the body limit to exceed (default 1048576).
"""

import hashlib
import hmac
import http.client
import json
import os
import secrets
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

# --- SM3 ---------------------------------------------------------------------------------

if "sm3" in hashlib.algorithms_available:

    def sm3_new(data=b""):
        return hashlib.new("sm3", data)

    SM3_SOURCE = "hashlib (OpenSSL)"
else:  # pragma: no cover - depends on how Python was built
    from gmssl import sm3 as _gmssl_sm3  # pip install gmssl

    class _GmsslSM3:
        """The hashlib interface hmac needs, over gmssl's SM3."""

        digest_size = 32
        block_size = 64
        name = "sm3"

        def __init__(self, data=b""):
            self._buf = bytearray(data)

        def update(self, data):
            self._buf += data

        def copy(self):
            return _GmsslSM3(bytes(self._buf))

        def digest(self):
            return bytes.fromhex(_gmssl_sm3.sm3_hash(list(self._buf)))

        def hexdigest(self):
            return self.digest().hex()

    def sm3_new(data=b""):
        return _GmsslSM3(data)

    SM3_SOURCE = "gmssl (PyPI)"


# --- signing (docs/signing.md) -----------------------------------------------------------

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def escape(s, keep_slash):
    """Percent-encode every byte outside RFC 3986's unreserved set (and '/' if kept)."""
    out = []
    for b in s.encode("utf-8"):
        if b in UNRESERVED or (keep_slash and b == ord("/")):
            out.append(chr(b))
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def canonical_query(raw):
    pairs = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((escape(urllib.parse.unquote_plus(name), False),
                      escape(urllib.parse.unquote_plus(value), False)))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def sign_headers(method, target, body, key_id, secret, timestamp=None, nonce=None):
    """The five X-MZ-* headers for a request line target ('/path?query') and body."""
    path, _, query = target.partition("?")
    timestamp = str(int(time.time()) if timestamp is None else int(timestamp))
    nonce = nonce or secrets.token_hex(16)
    content_sm3 = sm3_new(body).hexdigest()
    canonical = "\n".join(["MZ-HMAC-SM3", method.upper(), escape(urllib.parse.unquote(path) or "/", True),
                           canonical_query(query), key_id, timestamp, nonce, content_sm3])
    signature = hmac.new(secret, canonical.encode("utf-8"), sm3_new).hexdigest()
    return {"X-MZ-Key-Id": key_id, "X-MZ-Timestamp": timestamp, "X-MZ-Nonce": nonce,
            "X-MZ-Content-SM3": content_sm3, "X-MZ-Signature": signature}


# --- the client --------------------------------------------------------------------------

class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        self.problem = {}
        if headers.get("Content-Type", "").startswith("application/problem+json"):
            self.problem = json.loads(body)

    @property
    def code(self):
        return self.problem.get("code", "")

    def retry_after(self):
        try:
            return max(1, int(self.headers.get("Retry-After", "1")))
        except ValueError:
            return 1


class Client:
    def __init__(self, base_url, key_id, secret):
        u = urllib.parse.urlsplit(base_url)
        self.scheme, self.netloc, self.prefix = u.scheme, u.netloc, u.path.rstrip("/")
        self.key_id, self.secret = key_id, secret

    def target(self, path):
        return self.prefix + path

    def send(self, method, target, body=b"", headers=None):
        """Send a request as it is, signed or not; one connection per request."""
        conn_class = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = conn_class(self.netloc, timeout=30)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Answer(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def call(self, method, path, body=b"", headers=None):
        """Sign and send; a 429 is waited out (Retry-After) and signed afresh, at most 3 tries."""
        return self.signed_call(method, path, body, headers)[1]

    def signed_call(self, method, path, body=b"", headers=None):
        """call, also returning the headers last sent."""
        target = self.target(path)
        for attempt in (1, 2, 3):
            h = {"Content-Type": "application/json"} if body else {}
            h.update(headers or {})
            h.update(sign_headers(method, target, body, self.key_id, self.secret))
            a = self.send(method, target, body, h)
            if a.status != 429 or attempt == 3:
                return h, a
            print(f"     (rate limited, retrying in {a.retry_after()}s)")
            time.sleep(a.retry_after())


def hall(version, price_fen, capacity=300, **extra):
    return dict(version=version, name="长青厅", category="large", capacity=capacity,
                price_fen=price_fen, status="available", **extra)


def dumps(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Run:
    def __init__(self):
        self.passed = self.failed = 0

    def report(self, ok, name, message):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {name:<24} {message}", flush=True)

    def expect(self, name, answer, status, code, extra=None):
        """Check the documented problem: status, code and a type naming the code."""
        if isinstance(answer, Exception):
            self.report(False, name, f"request failed: {answer}")
            return
        p = answer.problem
        why = []
        if answer.status != status or answer.code != code:
            why.append(f"want {status} {code}")
        if answer.code and not p.get("type", "").endswith("/" + answer.code):
            why.append(f"type {p.get('type')} does not name the code")
        if extra and not why:
            problem = extra(answer)
            if problem:
                why.append(problem)
        msg = f"{answer.status} {answer.code}: {p.get('detail', '')}"
        msg += "".join(f" [{e.get('field')}: {e.get('reason')}]" for e in p.get("errors", []))
        if p.get("request_id"):
            msg += f" (request {p['request_id']})"  # the id to quote to the bureau
        if why:
            msg += " -- " + "; ".join(why)
        self.report(not why, name, msg)


def push_and_read(c, run, path, hall_id):
    now = datetime.now(timezone(timedelta(hours=8))).isoformat(timespec="seconds")
    v1 = hall(1, 280000, updated_at=now)
    a = c.call("PUT", path, dumps(v1))
    if a.status != 200:
        raise RuntimeError(f"push: {a.status} {a.code} {a.problem.get('detail', '')}")
    run.report(True, "push", f"PUT {path} version 1: 200, ETag {a.headers.get('ETag')}")

    a = c.call("GET", path)
    if a.status != 200:
        raise RuntimeError(f"read back: {a.status} {a.body!r}")
    rec = json.loads(a.body)
    if rec["id"] != hall_id or rec["version"] != 1 or rec["data"]["name"] != v1["name"] \
            or rec["data"]["price_fen"] != v1["price_fen"]:
        raise RuntimeError(f"read back {path}: got {rec}")
    etag = a.headers.get("ETag")
    run.report(True, "read back", f"GET {path}: version {rec['version']}, revision {rec['revision']}, "
                                  f"{rec['data']['name']} {rec['data']['price_fen']} fen")

    v2 = dict(v1, version=2, price_fen=300000)
    a = c.call("PUT", path, dumps(v2), {"If-Match": etag})
    if a.status != 200:
        raise RuntimeError(f"update with If-Match {etag}: {a.status} {a.code}")
    run.report(True, "update", f"PUT {path} version 2 with If-Match {etag}: 200, ETag {a.headers.get('ETag')}")

    a = c.call("PUT", path, dumps(v2))  # the same version and content: answered as before
    run.report(a.status == 200, "idempotent resend", f"PUT {path} version 2 again: {a.status}")

    # An incremental read: the halls stored in the last hour ("+08:00" escaped; the query is signed).
    since = (datetime.now(timezone(timedelta(hours=8))) - timedelta(hours=1)).isoformat(timespec="seconds")
    query = urllib.parse.urlencode({"page_size": 200, "updated_since": since})
    a = c.call("GET", "/partner/v1/halls?" + query)
    if a.status != 200:
        raise RuntimeError(f"list: {a.status} {a.body!r}")
    items = json.loads(a.body)["items"]
    found = any(it["id"] == hall_id and it["version"] == 2 for it in items)
    run.report(found, "list", f"GET /partner/v1/halls?{query}: {len(items)} halls, {hall_id} at version 2 among them: {found}")


def provoke(c, run, path, limit):
    target = c.target(path)
    valid = dumps(hall(3, 300000))
    json_ct = {"Content-Type": "application/json"}

    # Authentication (docs/signing.md).
    run.expect("signature_missing", c.send("PUT", target, valid, json_ct), 401, "signature_missing")

    h = dict(json_ct, **sign_headers("PUT", target, valid, c.key_id, c.secret))
    tampered = valid.replace(b"300000", b"000001")  # the body changed after signing
    run.expect("signature_invalid", c.send("PUT", target, tampered, h), 401, "signature_invalid")

    h = dict(json_ct, **sign_headers("PUT", target, valid, c.key_id, c.secret, timestamp=time.time() - 3600))
    run.expect("timestamp_expired", c.send("PUT", target, valid, h), 401, "timestamp_expired")

    h = dict(json_ct, **sign_headers("PUT", target, valid, "no-such-key-" + secrets.token_hex(4), c.secret))
    run.expect("unknown_key", c.send("PUT", target, valid, h), 401, "unknown_key")

    h, first = c.signed_call("GET", path)
    again = c.send("GET", target, b"", h) if first.status == 200 else \
        RuntimeError(f"the first send answered {first.status}")
    run.expect("nonce_reused", again, 401, "nonce_reused")

    # The request itself.
    bad = target.replace("/halls/", "/halls//")
    run.expect("bad_path", c.send("GET", bad, b"", sign_headers("GET", bad, b"", c.key_id, c.secret)),
               400, "bad_path")

    run.expect("headers_too_large", c.call("GET", path, headers={"X-Padding": "a" * (64 << 10)}),
               431, "headers_too_large")

    big = b'{"version":3,"description":"' + b"x" * limit + b'"}'
    run.expect("body_too_large", c.call("PUT", path, big), 413, "body_too_large")

    run.expect("unsupported_media_type", c.call("PUT", path, valid, {"Content-Type": "text/plain"}),
               415, "unsupported_media_type")

    run.expect("bad_json", c.call("PUT", path, b'{"version":3,'), 400, "bad_json")

    def names_price(a):
        fields = [e.get("field") for e in a.problem.get("errors", [])]
        return None if "/price_fen" in fields else f"no error names the JSON pointer /price_fen: {fields}"
    run.expect("validation_failed", c.call("PUT", path, dumps(hall(3, -1))), 422, "validation_failed", names_price)

    run.expect("not_found", c.call("GET", "/partner/v1/halls/H-NONE-" + secrets.token_hex(4)), 404, "not_found")

    run.expect("method_not_allowed", c.call("POST", path, valid), 405, "method_not_allowed",
               lambda a: None if a.headers.get("Allow") else "no Allow header")

    burial = dumps(dict(version=1, deceased_name="张三", burial_date="2026-11-27", burial_type="tree", plot_code="A-1"))
    run.expect("forbidden", c.call("PUT", "/partner/v1/burials/B-1", burial), 403, "forbidden")

    # Versions and concurrency (the hall is at version 2).
    run.expect("stale_version", c.call("PUT", path, dumps(hall(1, 280000))), 409, "stale_version")
    run.expect("version_conflict", c.call("PUT", path, dumps(hall(2, 300000, capacity=250))), 409, "version_conflict")
    run.expect("precondition_failed", c.call("PUT", path, valid, {"If-Match": '"999999"'}), 412, "precondition_failed")

    key = {"Idempotency-Key": "py-example-" + secrets.token_hex(16)}
    first = c.call("PUT", path, valid, key)
    again = c.call("PUT", path, valid, key)
    if first.status != 200:
        result = RuntimeError(f"the first push with the key answered {first.status}")
    elif again.status != 200 or again.headers.get("Idempotent-Replayed") != "true":
        result = RuntimeError(f"the same request with the key: {again.status}, "
                              f"Idempotent-Replayed {again.headers.get('Idempotent-Replayed')!r}; want a replay")
    else:
        result = c.call("PUT", path, dumps(hall(4, 310000)), key)
    run.expect("idempotency_key_reused", result, 422, "idempotency_key_reused")

    rate_limited(c, run, path)


def rate_limited(c, run, path):
    """Read 8 at a time until the hub answers 429, then honour Retry-After and read once more."""
    target = c.target(path)

    def read(_):
        return c.send("GET", target, b"", sign_headers("GET", target, b"", c.key_id, c.secret))

    limited = None
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(60):
            answers = list(pool.map(read, range(8)))
            odd = [a for a in answers if a.status not in (200, 429)]
            if odd:
                run.expect("rate_limited", RuntimeError(f"a read answered {odd[0].status} {odd[0].code}"),
                           429, "rate_limited")
                return
            limited = next((a for a in answers if a.status == 429), None)
            if limited:
                break
    if not limited:
        run.expect("rate_limited", RuntimeError("480 reads were never rate limited"), 429, "rate_limited")
        return

    def honour(a):
        value = a.headers.get("Retry-After", "")
        if not value.isdigit() or int(value) < 1:
            return f"Retry-After {value!r}: want whole seconds"
        print(f"     (waiting Retry-After {value}s)")
        time.sleep(int(value))
        after = c.call("GET", path)
        return None if after.status == 200 else f"after Retry-After the read answered {after.status}"
    run.expect("rate_limited", limited, 429, "rate_limited", honour)


def main():
    base, key_id, secret_hex = (os.environ.get(k, "") for k in ("MZ_BASE_URL", "MZ_KEY_ID", "MZ_SECRET_HEX"))
    if not (base and key_id and secret_hex):
        print("set MZ_BASE_URL, MZ_KEY_ID and MZ_SECRET_HEX (the partner's key id and its 64-hex-character secret)",
              file=sys.stderr)
        return 2
    try:
        secret = bytes.fromhex(secret_hex)
        limit = int(os.environ.get("MZHUB_MAX_BODY_BYTES", str(1 << 20)))
    except ValueError:
        print("MZ_SECRET_HEX must be hex and MZHUB_MAX_BODY_BYTES a number", file=sys.stderr)
        return 2
    print(f"SM3 from {SM3_SOURCE}")
    c = Client(base, key_id, secret)
    run = Run()
    hall_id = "H-PY-" + secrets.token_hex(4)
    path = "/partner/v1/halls/" + hall_id
    try:
        push_and_read(c, run, path, hall_id)
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        print(f"FAIL push and read back: {e}")
        return 1
    try:
        provoke(c, run, path, limit)
    except (OSError, ValueError, http.client.HTTPException) as e:
        print(f"FAIL the hub's answers could not be read: {e!r}")
        return 1
    print(f"examples/python: {run.passed} answers as documented, {run.failed} not")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
