#!/usr/bin/env python3
"""Signs a table of requests with botocore's SigV4Auth/S3SigV4Auth at a fixed time, so the Swift
signer can be checked against an independent implementation. Usage: sigv4_reference.py IN.json OUT.json"""
import base64
import datetime
import json
import sys
from unittest import mock

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2026, 11, 22, 10, 0, 0)


def main():
    requests = json.load(open(sys.argv[1]))
    out = []
    for r in requests:
        req = AWSRequest(method=r["method"], url=r["url"], data=base64.b64decode(r["body"]), headers=r["headers"])
        creds = Credentials(r["access_key_id"], r["secret_access_key"], r.get("session_token"))
        cls = S3SigV4Auth if r["s3"] else SigV4Auth
        with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
            cls(creds, r["service"], r["region"]).add_auth(req)
        out.append({"authorization": req.headers["Authorization"], "x_amz_date": req.headers["X-Amz-Date"]})
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
