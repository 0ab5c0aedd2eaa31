"""Local fake identity providers that issue real signed tokens (ES256, joserfc): an OpenID Connect
provider (authorise with PKCE, token, JWKS) and the Guangdong unified identity flow (authorise,
access token, token info with the user object). Outgoing calls reach them through
`yuyue.identity.providers.transport`."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests.conftest import Api
from yuyue.config import Settings
from yuyue.identity import providers

IDP = "http://idp.test"
CLIENT_ID = "yuyue-portal"
CLIENT_SECRET = "fake-client-secret-0123456789"


async def _form(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}


class FakeProvider:
    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.rogue = ECKey.generate_key("P-256", parameters={"kid": "k1"})  # same kid, other key
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}  # access token → UserInfo answer
        self.jwks_fetches = 0
        self.app = self._build()

    def sign(self, claims: dict[str, Any], rogue: bool = False) -> str:
        return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, self.rogue if rogue else self.key)

    def authorize(self, url: str, user: dict[str, Any], **tweaks: Any) -> str:
        """What the provider's login page does: the citizen logs in, we get a code."""
        query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
        code = secrets.token_urlsafe(12)
        self.codes[code] = {"query": query, "user": user, **tweaks}
        return code

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": IDP,
                "authorization_endpoint": f"{IDP}/oidc/authorize",
                "token_endpoint": f"{IDP}/oidc/token",
                "jwks_uri": f"{IDP}/oidc/jwks",
                "userinfo_endpoint": f"{IDP}/oidc/userinfo",
                "end_session_endpoint": f"{IDP}/oidc/logout",
            }

        @app.get("/oidc/jwks")
        async def jwks() -> dict[str, Any]:
            self.jwks_fetches += 1
            return KeySet([self.key]).as_dict(private=False)

        @app.get("/oidc/userinfo")
        async def userinfo(request: Request) -> JSONResponse:
            access = request.headers.get("authorization", "").removeprefix("Bearer ")
            info = self.tokens.get(access)
            if info is None:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return JSONResponse(info)

        @app.post("/oidc/token")
        async def oidc_token(request: Request) -> JSONResponse:
            form = await _form(request)
            code, code_verifier = form.get("code", ""), form.get("code_verifier", "")
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
            grant = self.codes.pop(code, None)
            basic = request.headers.get("authorization", "")
            if basic.startswith("Basic "):
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            if grant is None or client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            query = grant["query"]
            challenge = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).rstrip(b"=")
            if query.get("code_challenge_method") != "S256" or challenge.decode() != query.get(
                "code_challenge"
            ):
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": IDP,
                "sub": "u-" + grant["user"]["id_number"],
                "aud": grant.get("aud", CLIENT_ID),
                "iat": now,
                "exp": now + grant.get("ttl", 300),
                "nonce": grant.get("nonce", query["nonce"]),
                **grant["user"],
            }
            id_token = self.sign(claims, rogue=grant.get("rogue", False))
            access = secrets.token_urlsafe(16)
            self.tokens[access] = grant.get("userinfo", {"sub": claims["sub"]})
            return JSONResponse({"access_token": access, "token_type": "Bearer", "id_token": id_token})

        @app.post("/gd/token")
        async def gd_token(request: Request) -> JSONResponse:
            form = await _form(request)
            code, client_id, client_secret = (
                form.get("code", ""),
                form.get("client_id", ""),
                form.get("client_secret", ""),
            )
            grant = self.codes.pop(code, None)
            if grant is None or client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            now = int(time.time())
            access = self.sign(
                {
                    "aud": grant.get("aud", CLIENT_ID),
                    "exp": now + grant.get("ttl", 7200),
                    "user": grant["user"],
                }
            )
            return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 7200})

        @app.get("/gd/tokeninfo")
        async def gd_tokeninfo(access_token: str) -> JSONResponse:
            try:
                token = jwt.decode(access_token, self.key, algorithms=["ES256"])
            except Exception:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            claims = token.claims
            return JSONResponse(
                {"client_id": claims["aud"], "expires_at": claims["exp"], "user": claims["user"]}
            )

        return app


@pytest.fixture(scope="session")
def fake_idp() -> FakeProvider:
    return FakeProvider()


@pytest.fixture(autouse=True)
def _route_to_fake(fake_idp: FakeProvider) -> Iterator[None]:
    providers.transport = httpx.ASGITransport(app=fake_idp.app)
    providers._jwks_cache.clear()
    providers._discovery_cache.clear()
    yield
    providers.transport = None
    providers._jwks_cache.clear()
    providers._discovery_cache.clear()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        db_pool_size=20,
        log_level="WARNING",
        identity_providers="dev,oidc,guangdong,foreigner",
        oidc_issuer=IDP,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        gd_client_id=CLIENT_ID,
        gd_client_secret=CLIENT_SECRET,
        gd_authorize_url=f"{IDP}/gd/authorize",
        gd_token_url=f"{IDP}/gd/token",
        gd_tokeninfo_url=f"{IDP}/gd/tokeninfo",
        login_redirect_uri="http://test/login/callback",
        retention_days=30,
    )


async def confirmed_phone(api: Api, phone: str) -> str:
    """Rule M6: an SMS code sent to `phone`, read from the console provider and verified; the
    `phone_token` the foreigner login asks for."""
    sent = await api.client.post("/api/v1/auth/phone/code", json={"phone": phone})
    assert sent.status_code == 201, sent.text
    messages = (await api.client.get("/api/v1/test/messages")).json()
    text = next(m for m in messages if m["kind"] == "code" and m["phone"] == phone)["text"]
    digits = re.search(r"(\d{6})", text).group(1)  # type: ignore[union-attr]
    verified = await api.client.post("/api/v1/auth/phone/verify", json={"phone": phone, "code": digits})
    assert verified.status_code == 200, verified.text
    return str(verified.json()["phone_token"])
