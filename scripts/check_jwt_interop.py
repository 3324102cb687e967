#!/usr/bin/env python3
"""Manual interop check: verify Latchkey access tokens with PyJWT + JWKS.

    python3 -m venv /tmp/pyjwt-venv && /tmp/pyjwt-venv/bin/pip install pyjwt cryptography
    LATCHKEY_JWT_OUT=/tmp/jwt-interop cargo test --lib write_interop_samples -- --ignored
    /tmp/pyjwt-venv/bin/python scripts/check_jwt_interop.py /tmp/jwt-interop

For each of EdDSA, ES256 and RS256: picks the JWK by the token's kid, verifies signature, exp,
iat, iss and aud with PyJWT, recomputes the RFC 7638 thumbprint independently, and checks that
a token with an edited payload is refused.
"""
import base64
import hashlib
import json
import sys

import jwt

ISS = "https://auth.example.com"
AUD = "latchkey"
REQUIRED = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}
PRIVATE = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def thumbprint(jwk: dict) -> str:
    members = {m: jwk[m] for m in REQUIRED[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def main(outdir: str) -> int:
    failures = 0
    for alg in ("EdDSA", "ES256", "RS256"):
        token = open(f"{outdir}/{alg}.jwt").read().strip()
        jwks = json.load(open(f"{outdir}/{alg}.jwks.json"))
        try:
            header = jwt.get_unverified_header(token)
            jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
            assert not PRIVATE & jwk.keys(), f"private members in JWK: {jwk}"
            assert thumbprint(jwk) == jwk["kid"], "kid is not the RFC 7638 thumbprint"
            key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=AUD,
                issuer=ISS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
            h, p, s = token.split(".")
            edited = dict(claims, org_role="admin")
            forged = ".".join([h, b64url(json.dumps(edited).encode()), s])
            try:
                jwt.decode(forged, key=key.key, algorithms=[alg], audience=AUD, issuer=ISS)
                raise AssertionError("edited token accepted")
            except jwt.InvalidSignatureError:
                pass
            print(f"{alg}: OK  header={header} sub={claims['sub']} amr={claims['amr']}")
        except Exception as e:  # noqa: BLE001 - report and keep going
            failures += 1
            print(f"{alg}: FAILED {type(e).__name__}: {e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/jwt-interop"))
