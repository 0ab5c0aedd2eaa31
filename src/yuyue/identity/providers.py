"""External identity providers (rule T2/G8): OpenID Connect through Authlib, and the Guangdong
unified identity service's OAuth2-style flow. Each turns a finished login into a `Claims` record
that identity/service.py normalises and checks; none of them touches the database.

- OIDC: endpoints discovered from the issuer (`/.well-known/openid-configuration`; hand-set URLs
  override); authorisation code with PKCE (S256), `state` and `nonce`; the ID token is verified with
  joserfc against the provider's JWKS (signature, issuer, audience, expiry, nonce), the JWKS fetched
  again on an unknown key id (key rotation) at most once per interval; the UserInfo claims merged
  in (same `sub`); ID-type codes mapped by a setting; RP-initiated logout through end-session.
  Every provider failure (unreachable, refusal, not JSON) is `401 login_failed`, logged with the
  provider's own error code, never with codes, tokens or secrets.
- Guangdong: authorise → code → access token (client secret, server to server) → token info with
  the user object; the token info must name our client id and be unexpired, and the account must be
  real-name verified. Field names are the `GD_*` tables below (decision 0061).

`transport` lets tests (and a deployment behind an egress proxy) route the outgoing HTTP calls.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401 - installs Authlib's own warning filter before ours below
import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
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

log = logging.getLogger("yuyue.identity")
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
    id_token: str | None = None  # OIDC: kept (encrypted) for the end-session request at logout


def _client(**kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(timeout=TIMEOUT_S, transport=transport, **kwargs)


def _refuse(detail: str) -> Unauthenticated:
    return Unauthenticated(f"login refused: {detail}", code="login_failed")


# --- OpenID Connect --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OidcEndpoints:
    """The provider's endpoints: discovered from the issuer, each replaceable by a hand-set URL."""

    authorize: str
    token: str
    jwks: str
    userinfo: str
    end_session: str


_discovery_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks_cache: dict[str, tuple[float, KeySet]] = {}  # url → (fetched at, keys)


def _provider_error(response: httpx.Response) -> str:
    """The provider's own words on a refusal, for the log: its `error` code and description (never
    the request's code, tokens or secrets), or the status and content type when it sent no JSON."""
    challenge = str(response.headers.get("www-authenticate", ""))
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return f"{str(body['error'])[:80]}: {str(body.get('error_description', ''))[:200]}"
    if challenge:
        return str(challenge)[:200]
    return f"HTTP {response.status_code} {response.headers.get('content-type', '')[:60]}"


async def _get_json(url: str, what: str, headers: dict[str, str] | None = None) -> Any:
    """GET a provider document; every failure (network, status, not JSON) is `401 login_failed`."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, transport=transport) as http:
            response = await http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("oidc %s: provider unreachable (%s)", what, type(exc).__name__)
        raise _refuse(f"the provider's {what} is unavailable") from None
    if response.status_code != 200:
        log.warning(
            "oidc %s: provider answered %s (%s)", what, response.status_code, _provider_error(response)
        )
        raise _refuse(f"the provider's {what} is unavailable")
    try:
        return response.json()
    except ValueError:
        log.warning("oidc %s: provider answer is not JSON (%s)", what, _provider_error(response))
        raise _refuse(f"the provider's {what} is unreadable") from None


async def _discovery(settings: Settings) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0: `{issuer}/.well-known/openid-configuration`, whose `issuer`
    must be exactly ours (§4.3); cached for YUYUE_OIDC_DISCOVERY_TTL_S."""
    issuer = settings.oidc_issuer
    cached = _discovery_cache.get(issuer)
    if cached and time.monotonic() - cached[0] < settings.oidc_discovery_ttl_s:
        return cached[1]
    document = await _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery")
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        log.warning("oidc discovery: the document names another issuer")
        raise _refuse("the provider's configuration names another issuer")
    _discovery_cache[issuer] = (time.monotonic(), document)
    return document


async def oidc_endpoints(settings: Settings) -> OidcEndpoints:
    document = await _discovery(settings) if settings.oidc_discovery else {}

    def pick(override: str, key: str) -> str:
        value = override or document.get(key) or ""
        return value if isinstance(value, str) else ""

    endpoints = OidcEndpoints(
        authorize=pick(settings.oidc_authorize_url, "authorization_endpoint"),
        token=pick(settings.oidc_token_url, "token_endpoint"),
        jwks=pick(settings.oidc_jwks_url, "jwks_uri"),
        userinfo=pick(settings.oidc_userinfo_url, "userinfo_endpoint"),
        end_session=pick(settings.oidc_end_session_url, "end_session_endpoint"),
    )
    if not (endpoints.authorize and endpoints.token and endpoints.jwks):
        log.warning("oidc discovery: no authorization, token or jwks endpoint")
        raise _refuse("the provider's configuration is incomplete")
    return endpoints


async def _keys(settings: Settings, url: str, *, refresh: bool) -> KeySet | None:
    """The provider's signing keys, cached JWKS_TTL_S. `refresh` (a key id we don't know: the
    provider rotated its keys) refetches at most once per YUYUE_OIDC_JWKS_REFETCH_S, so tokens
    naming made-up key ids cannot make us hammer the provider; None when that is too soon."""
    cached = _jwks_cache.get(url)
    now = time.monotonic()
    if cached and not refresh and now - cached[0] < JWKS_TTL_S:
        return cached[1]
    if cached and refresh and now - cached[0] < settings.oidc_jwks_refetch_s:
        return None
    document = await _get_json(url, "keys")
    try:
        keys = KeySet.import_key_set(document)
    except (JoseError, ValueError, TypeError, KeyError, AttributeError):
        log.warning("oidc keys: the provider's JWKS holds no usable key set")
        raise _refuse("the provider's keys are unreadable") from None
    _jwks_cache[url] = (now, keys)
    return keys


async def _decode_id_token(settings: Settings, jwks_url: str, id_token: str) -> dict[str, Any]:
    keys = await _keys(settings, jwks_url, refresh=False)
    assert keys is not None  # only a refresh may be declined
    try:
        return dict(jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS).claims)
    except InvalidKeyIdError:
        pass  # signed with a key we have not seen: fetch the set again, once per interval
    except (JoseError, ValueError):
        raise _refuse("the ID token's signature does not verify") from None
    fresh = await _keys(settings, jwks_url, refresh=True)
    if fresh is None:
        raise _refuse("the ID token names an unknown signing key")
    try:
        return dict(jwt.decode(id_token, fresh, algorithms=ID_TOKEN_ALGORITHMS).claims)
    except (JoseError, ValueError):
        raise _refuse("the ID token's signature does not verify") from None


async def oidc_authorize_url(settings: Settings, state: str, nonce: str, verifier: str) -> str:
    endpoints = await oidc_endpoints(settings)
    client = _client(
        client_id=settings.oidc_client_id,
        scope=settings.oidc_scope,
        redirect_uri=settings.login_redirect_uri,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        endpoints.authorize, state=state, nonce=nonce, code_verifier=verifier
    )
    return str(url)


async def _userinfo(url: str, access_token: str, subject: str) -> dict[str, Any]:
    """OpenID Connect Core §5.3: the profile claims a provider keeps out of the ID token once an
    access token is issued; its `sub` must be the ID token's (§5.3.2)."""
    info = await _get_json(url, "userinfo", headers={"Authorization": f"Bearer {access_token}"})
    if not isinstance(info, dict):
        raise _refuse("the provider's userinfo is unreadable")
    if info.get("sub") != subject:
        log.warning("oidc userinfo: its subject differs from the ID token's")
        raise _refuse("the provider's userinfo is about someone else")
    return info


def _id_type(settings: Settings, value: object) -> str:
    """The provider's ID-type code mapped to ours (YUYUE_OIDC_ID_TYPE_MAP, e.g. ID_CARD → resident_id);
    an unmapped value passes through (identity.service refuses unknown types)."""
    if value is None or value == "":
        return "resident_id"
    return settings.oidc_id_type_map.get(str(value), str(value))


async def oidc_finish(settings: Settings, code: str, nonce: str, verifier: str) -> Claims:
    endpoints = await oidc_endpoints(settings)
    client = _client(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        redirect_uri=settings.login_redirect_uri,
        code_challenge_method="S256",
    )
    try:
        async with client:
            token = await client.fetch_token(endpoints.token, code=code, code_verifier=verifier)
    except OAuthError as exc:
        log.warning("oidc token: provider refused (%s: %s)", exc.error, str(exc.description or "")[:200])
        raise _refuse("the provider did not accept the authorisation code") from None
    except httpx.HTTPError as exc:
        log.warning("oidc token: provider unreachable (%s)", type(exc).__name__)
        raise _refuse("the provider did not accept the authorisation code") from None
    except (ValueError, TypeError, KeyError):
        log.warning("oidc token: the provider's answer is unreadable")
        raise _refuse("the provider did not accept the authorisation code") from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise _refuse("the provider sent no ID token")
    claims = await _decode_id_token(settings, endpoints.jwks, id_token)
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
    access = token.get("access_token")
    if endpoints.userinfo and isinstance(access, str) and access:
        # The signed ID token's claims win where both carry one.
        claims = {**await _userinfo(endpoints.userinfo, access, str(claims["sub"])), **claims}
    verified = claims.get(settings.oidc_verified_claim)
    return Claims(
        name=str(claims.get("name", "")),
        id_type=_id_type(settings, claims.get(settings.oidc_id_type_claim)),
        id_number=str(claims.get(settings.oidc_id_number_claim, "")),
        phone=str(claims.get("phone_number", "")).removeprefix("+86"),
        real_name=verified is True or verified == "true",
        id_token=id_token,
    )


async def oidc_logout_url(settings: Settings, id_token: str | None) -> str | None:
    """OpenID Connect RP-Initiated Logout 1.0: where to send the browser so the provider ends its
    own session too (else the next person at a shared computer pressing "log in" is let in as the
    previous citizen); None when the provider has no end-session endpoint or cannot be reached."""
    try:
        endpoints = await oidc_endpoints(settings)
    except Unauthenticated:
        return None
    if not endpoints.end_session:
        return None
    params = {"client_id": settings.oidc_client_id}
    if id_token:
        params["id_token_hint"] = id_token
    if settings.oidc_post_logout_redirect_uri:
        params["post_logout_redirect_uri"] = settings.oidc_post_logout_redirect_uri
    separator = "&" if "?" in endpoints.end_session else "?"
    return endpoints.end_session + separator + urlencode(params)


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
        log.warning(
            "guangdong tokeninfo: provider answered %s (%s)", response.status_code, _provider_error(response)
        )
        raise _refuse("the provider did not confirm the access token")
    try:
        info = response.json()
    except ValueError:
        raise _refuse("the provider's token info is unreadable") from None
    if not isinstance(info, dict) or not isinstance(info.get("user"), dict):
        raise _refuse("the provider's token info has no user")
    if info.get("client_id") != settings.gd_client_id:
        raise _refuse("the access token was issued to another client")
    expires_at = info.get("expires_at")
    if not isinstance(expires_at, int | float) or expires_at <= time.time():
        raise _refuse("the access token has expired")
    return _gd_claims(info["user"])
