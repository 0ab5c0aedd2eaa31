"""External identity providers (rule T2/G8): OpenID Connect through Authlib, and the Guangdong
unified identity service's OAuth2-style flow. Each turns a finished login into a `Claims` record
that identity/service.py normalises and checks; none of them touches the database.

- OIDC: authorisation code with PKCE (S256), `state` and `nonce`; the ID token is verified with
  joserfc against the provider's JWKS (signature, issuer, audience, expiry, nonce).
- Guangdong: authorise → code → access token (client secret, server to server) → token info with
  the user object; the token info must name our client id and be unexpired, and the account must be
  real-name verified. Field names are the `GD_*` tables below (decision 0061).

`transport` lets tests (and a deployment behind an egress proxy) route the outgoing HTTP calls.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401 - installs Authlib's own warning filter before ours below
import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from yuyue.config import Settings
from yuyue.errors import Unauthenticated

with warnings.catch_warnings():
    # Authlib 1.7+ prefers the httpx2 fork and warns when it falls back to httpx; httpx works.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
        OAuthError,
    )

transport: httpx.AsyncBaseTransport | None = None
TIMEOUT_S = 10.0
JWKS_TTL_S = 300.0
ID_TOKEN_ALGORITHMS = ["RS256", "ES256", "PS256"]

# Guangdong unified identity: certificate type codes (GA/T 517) → our id_type.
GD_CERT_TYPES = {
    "111": "resident_id",
    "414": "passport",
    "516": "hk_macao_permit",
    "511": "taiwan_permit",
    "553": "foreigner_permanent_id",
}
GD_PERSON, GD_LEGAL_PERSON = "1", "2"


@dataclass(frozen=True)
class Claims:
    """What a provider vouches for, before our own checks (check digits, phone format)."""

    name: str
    id_type: str
    id_number: str
    phone: str
    real_name: bool
    kind: str = "person"  # person | legal_person (then the fields above are the acting agent's)
    company_uscc: str | None = None
    company_name: str | None = None


def _client(**kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(timeout=TIMEOUT_S, transport=transport, **kwargs)


def _refuse(detail: str) -> Unauthenticated:
    return Unauthenticated(f"login refused: {detail}", code="login_failed")


# --- OpenID Connect --------------------------------------------------------------------------------

_jwks_cache: dict[str, tuple[float, KeySet]] = {}


async def _jwks(url: str, *, refresh: bool = False) -> KeySet:
    cached = _jwks_cache.get(url)
    if cached and not refresh and time.monotonic() - cached[0] < JWKS_TTL_S:
        return cached[1]
    async with httpx.AsyncClient(timeout=TIMEOUT_S, transport=transport) as http:
        response = await http.get(url)
    if response.status_code != 200:
        raise _refuse("the provider's keys are unavailable")
    keys = KeySet.import_key_set(response.json())
    _jwks_cache[url] = (time.monotonic(), keys)
    return keys


def oidc_authorize_url(settings: Settings, state: str, nonce: str, verifier: str) -> str:
    client = _client(
        client_id=settings.oidc_client_id,
        scope=settings.oidc_scope,
        redirect_uri=settings.login_redirect_uri,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        settings.oidc_authorize_url, state=state, nonce=nonce, code_verifier=verifier
    )
    return str(url)


async def _decode_id_token(settings: Settings, id_token: str) -> dict[str, Any]:
    for refresh in (False, True):  # a key id we don't know yet: the provider rotated its keys
        keys = await _jwks(settings.oidc_jwks_url, refresh=refresh)
        try:
            return dict(jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS).claims)
        except ValueError:
            if refresh:
                break
        except JoseError:
            break
    raise _refuse("the ID token's signature does not verify")


async def oidc_finish(settings: Settings, code: str, nonce: str, verifier: str) -> Claims:
    client = _client(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        redirect_uri=settings.login_redirect_uri,
        code_challenge_method="S256",
    )
    try:
        async with client:
            token = await client.fetch_token(settings.oidc_token_url, code=code, code_verifier=verifier)
    except (OAuthError, httpx.HTTPError, ValueError):
        raise _refuse("the provider did not accept the authorisation code") from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise _refuse("the provider sent no ID token")
    claims = await _decode_id_token(settings, id_token)
    registry = jwt.JWTClaimsRegistry(
        leeway=60,
        iss={"essential": True, "value": settings.oidc_issuer},
        aud={"essential": True, "value": settings.oidc_client_id},
        exp={"essential": True},
        sub={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise _refuse(f"ID token {exc.error}") from None
    verified = claims.get(settings.oidc_verified_claim)
    return Claims(
        name=str(claims.get("name", "")),
        id_type=str(claims.get(settings.oidc_id_type_claim, "resident_id")),
        id_number=str(claims.get(settings.oidc_id_number_claim, "")),
        phone=str(claims.get("phone_number", "")).removeprefix("+86"),
        real_name=verified is True or verified == "true",
    )


# --- Guangdong unified identity (广东政务服务网统一身份认证) -------------------------------------------


def gd_authorize_url(settings: Settings, state: str) -> str:
    client = _client(client_id=settings.gd_client_id, redirect_uri=settings.login_redirect_uri)
    url, _ = client.create_authorization_url(settings.gd_authorize_url, state=state)
    return str(url)


def _gd_claims(user: dict[str, Any]) -> Claims:
    """Map the province's user object (decision 0061) to our record."""
    legal = str(user.get("user_type", GD_PERSON)) == GD_LEGAL_PERSON
    prefix = "agent_" if legal else ""
    cert_type = str(user.get(f"{prefix}cert_type", ""))
    id_type = GD_CERT_TYPES.get(cert_type)
    if id_type is None:
        raise _refuse(f"unsupported certificate type {cert_type!r}")
    return Claims(
        name=str(user.get(f"{prefix}name", "")),
        id_type=id_type,
        id_number=str(user.get(f"{prefix}cert_no", "")),
        phone=str(user.get(f"{prefix}mobile", "")),
        real_name=str(user.get("real_name_status", "")) == "1",
        kind="legal_person" if legal else "person",
        company_uscc=str(user["corp_uscc"]) if legal and user.get("corp_uscc") else None,
        company_name=str(user["corp_name"]) if legal and user.get("corp_name") else None,
    )


async def gd_finish(settings: Settings, code: str) -> Claims:
    client = _client(
        client_id=settings.gd_client_id,
        client_secret=settings.gd_client_secret,
        redirect_uri=settings.login_redirect_uri,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name, not a secret
    )
    try:
        async with client:
            token = await client.fetch_token(settings.gd_token_url, code=code)
            access = token.get("access_token")
            if not isinstance(access, str):
                raise _refuse("the provider sent no access token")
            response = await client.get(settings.gd_tokeninfo_url, params={"access_token": access})
    except (OAuthError, httpx.HTTPError, ValueError):
        raise _refuse("the provider did not accept the authorisation code") from None
    if response.status_code != 200:
        raise _refuse("the provider did not confirm the access token")
    info = response.json()
    if not isinstance(info, dict) or not isinstance(info.get("user"), dict):
        raise _refuse("the provider's token info has no user")
    if info.get("client_id") != settings.gd_client_id:
        raise _refuse("the access token was issued to another client")
    expires_at = info.get("expires_at")
    if not isinstance(expires_at, int | float) or expires_at <= time.time():
        raise _refuse("the access token has expired")
    return _gd_claims(info["user"])
