"""An independent JOSE implementation for the interop tests (crates/cli/tests/token_interop.rs).

jwcrypto builds DPoP proofs our verifier must accept; PyJWT verifies our access tokens against a
published JWK set. Neither library was written here.

    jose_peer.py keygen EdDSA|ES256 KEYFILE      -> prints the key's RFC 7638 thumbprint
    jose_peer.py proof KEYFILE METHOD URL TOKEN  -> prints a DPoP proof (with ath)
    jose_peer.py verify-at JWKSFILE TOKEN ISS AUD -> prints the verified claims as JSON
    jose_peer.py verify-at-url JWKS_URL CAFILE TOKEN ISS AUD
        -> the same, with the JWK set fetched by PyJWKClient over HTTPS (trusting only CAFILE)
"""
import base64
import hashlib
import json
import ssl
import sys
import time
import uuid

import jwt as pyjwt
from jwcrypto import jwk
from jwcrypto import jwt as jc_jwt


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keygen(alg: str, path: str) -> None:
    if alg == "EdDSA":
        key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    else:
        key = jwk.JWK.generate(kty="EC", crv="P-256")
    with open(path, "w", encoding="utf-8") as f:
        f.write(key.export_private())
    print(key.thumbprint())


def proof(path: str, method: str, url: str, token: str) -> None:
    with open(path, encoding="utf-8") as f:
        key = jwk.JWK.from_json(f.read())
    alg = "EdDSA" if key["kty"] == "OKP" else "ES256"
    claims = {
        "jti": uuid.uuid4().hex,
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
        "ath": b64url(hashlib.sha256(token.encode()).digest()),
    }
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.export_public(as_dict=True)}
    token = jc_jwt.JWT(header=header, claims=claims)
    token.make_signed_token(key)
    print(token.serialize())


def verify_at(jwks_path: str, token: str, iss: str, aud: str) -> None:
    with open(jwks_path, encoding="utf-8") as f:
        jwks = pyjwt.PyJWKSet.from_json(f.read())
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims = pyjwt.decode(
        token, key.key, algorithms=["EdDSA", "ES256"], audience=aud, issuer=iss
    )
    print(json.dumps(claims, sort_keys=True))


def verify_at_url(jwks_url: str, cafile: str, token: str, iss: str, aud: str) -> None:
    context = ssl.create_default_context(cafile=cafile)
    client = pyjwt.PyJWKClient(jwks_url, cache_keys=False, ssl_context=context)
    key = client.get_signing_key_from_jwt(token)
    claims = pyjwt.decode(
        token, key.key, algorithms=["EdDSA", "ES256"], audience=aud, issuer=iss
    )
    print(json.dumps(claims, sort_keys=True))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {
        "keygen": keygen,
        "proof": proof,
        "verify-at": verify_at,
        "verify-at-url": verify_at_url,
    }[command](*args)
