"""Makes sure an S3 bucket exists, speaking the S3 API directly (stdlib only, AWS Signature V4).

    python scripts/s3_bucket.py http://127.0.0.1:9010 ragops     # credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY

Used by scripts/services.sh for the local MinIO (which creates no bucket by itself), before any
virtualenv exists, so no boto3 and no `mc`. HEAD the bucket; on 404, PUT it. Exit 0 when it exists.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_request(method: str, endpoint: str, path: str, access_key: str, secret_key: str,
                   region: str = "us-east-1") -> urllib.request.Request:
    """A path-style S3 request without a body, signed with AWS Signature Version 4."""
    host = urlsplit(endpoint).netloc
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, EMPTY_SHA256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(f"AWS4{secret_key}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    del headers["host"]  # urllib sets it from the URL (the same value)
    return urllib.request.Request(endpoint.rstrip("/") + path, method=method, headers=headers)


def status(request: urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def ensure_bucket(endpoint: str, bucket: str, access_key: str, secret_key: str) -> str:
    head, _ = status(signed_request("HEAD", endpoint, f"/{bucket}", access_key, secret_key))
    if head == 200:
        return "exists"
    if head != 404:
        raise RuntimeError(f"HEAD {endpoint}/{bucket} answered {head}")
    code, body = status(signed_request("PUT", endpoint, f"/{bucket}", access_key, secret_key))
    if code == 200 or "BucketAlreadyOwnedByYou" in body:
        return "created"
    raise RuntimeError(f"PUT {endpoint}/{bucket} answered {code}: {body[:500]}")


def main() -> int:
    endpoint, bucket = sys.argv[1], sys.argv[2]
    result = ensure_bucket(endpoint, bucket, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    print(f"[services] bucket {bucket} at {endpoint}: {result}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
