#!/usr/bin/python3
"""mint-tokens.py: the signing key and the tokens of one benchmark run.

    mint-tokens.py DIR COUNT ISSUER AUDIENCE

Writes into DIR:
  key.pem      RSA 2048 private key (stays in DIR, used only here)
  pub.pem      its public key (PEM), for HAProxy's jwt_verify
  jwks.json    the same key as a JSON Web Key Set (kid "bench-1"), for credgate
  token-one    one RS256 token, the "repeated token" of the keep-alive runs
  token-warm   another token, used only by warm-up runs
  tokens.txt   COUNT distinct RS256 tokens, one per line

Every token has iss, sub, aud (a string), iat = now, exp = now + 3600 (the
default max_lifetime of a credgate issuer), a unique jti, and a
"repository" claim.  Signing uses every core: an RSA 2048 signature costs
a few hundred microseconds, so 60,000 tokens take a few seconds.
"""
import base64
import json
import multiprocessing
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "bench-1"
_key = None
_claims = None


def _init(pem, claims):
    global _key, _claims
    _key = serialization.load_pem_private_key(pem, None)
    _claims = claims


def _mint(i):
    c = dict(_claims)
    c["sub"] = "bench-client-%d" % i
    c["jti"] = "bench-%d-%s" % (i, base64.urlsafe_b64encode(os.urandom(9)).decode())
    return jwt.encode(c, _key, algorithm="RS256", headers={"kid": KID})


def b64u(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: mint-tokens.py DIR COUNT ISSUER AUDIENCE")
    out, count, iss, aud = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key()
    with open(os.path.join(out, "key.pem"), "wb") as f:
        f.write(pem)
    with open(os.path.join(out, "pub.pem"), "wb") as f:
        f.write(pub.public_bytes(serialization.Encoding.PEM,
                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    nums = pub.public_numbers()
    jwk = {"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
           "n": b64u(nums.n), "e": b64u(nums.e)}
    with open(os.path.join(out, "jwks.json"), "w") as f:
        json.dump({"keys": [jwk]}, f)

    now = int(time.time())
    claims = {"iss": iss, "aud": aud, "iat": now, "exp": now + 3600,
              "repository": "acme/bench"}
    _init(pem, claims)
    with open(os.path.join(out, "token-one"), "w") as f:
        f.write(_mint(count + 1) + "\n")
    with open(os.path.join(out, "token-warm"), "w") as f:
        f.write(_mint(count + 2) + "\n")
    with multiprocessing.Pool(os.cpu_count() or 1, _init, (pem, claims)) as pool:
        tokens = pool.map(_mint, range(count), chunksize=500)
    with open(os.path.join(out, "tokens.txt"), "w") as f:
        f.write("\n".join(tokens) + "\n")


if __name__ == "__main__":
    main()
