"""The docs stay true to the code: docs/api.md names every route of `/openapi.json` and no route
that is not there, and docs/rules.md defines every rule ID the code cites (`# rule G15`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from yuyue.app import create_app
from yuyue.config import Settings

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT / "docs" / "api.md"
RULES_MD = ROOT / "docs" / "rules.md"
HEALTH = {"/healthz", "/readyz", "/metrics"}
NOT_SERVED = "## Not served yet"

ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[\w{}/.\-]*)")
API_PATH = re.compile(r"/api/v1/[\w{}/.\-]*")
RULE_CITE = re.compile(r"\brules? ([TMG]\d+(?:(?:, | and | or |/|–|-)[TMG]\d+)*)")
RULE_ID = re.compile(r"\b[TMG]\d+\b")


def normalise(path: str) -> str:
    """`/api/v1/appointments/{number}` and `/api/v1/appointments/{n}` are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/.")) or "/"


def documented(text: str) -> set[tuple[str, str]]:
    return {(method, normalise(path)) for method, path in ROUTE.findall(text)}


def sections(text: str) -> tuple[str, str]:
    """(everything but the "Not served yet" section, that section)."""
    head, sep, rest = text.partition(NOT_SERVED)
    assert sep, f"docs/api.md has no '{NOT_SERVED}' section"
    gap, sep, tail = rest.partition("\n## ")
    return head + (sep + tail if sep else ""), gap


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    db = tmp_path_factory.mktemp("docs") / "yuyue.sqlite3"
    app = create_app(Settings(env="test", database_url=f"sqlite:///{db}"), run_jobs=False)
    routes = {
        (method.upper(), normalise(path))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert len(routes) > 50  # the whole API, not an empty or partial document
    return routes


def test_parsing() -> None:
    text = "| `GET /api/v1/halls?under=<unit_id>` | … `POST /api/v1/appointments/{number}/cancel` |"
    assert documented(text) == {("GET", "/api/v1/halls"), ("POST", "/api/v1/appointments/{}/cancel")}
    assert normalise("/api/v1/citizens/{citizen_id}/bans/{ban_id}") == "/api/v1/citizens/{}/bans/{}"
    cited = RULE_CITE.search("# rules T2, G8 and M10/M12: …")
    assert cited is not None and RULE_ID.findall(cited[1]) == ["T2", "G8", "M10", "M12"]


def test_every_served_route_is_documented(openapi: set[tuple[str, str]]) -> None:
    served, _ = sections(API_MD.read_text(encoding="utf-8"))
    public = {(m, p) for m, p in openapi if p.startswith("/api/") or p in HEALTH}
    assert public == openapi, "a route outside /api/ and the health checks is in the OpenAPI document"
    missing = sorted(f"{m} {p}" for m, p in public - documented(served))
    assert not missing, f"routes served but not in docs/api.md: {missing}"


def test_every_documented_route_is_served(openapi: set[tuple[str, str]]) -> None:
    served, gap = sections(API_MD.read_text(encoding="utf-8"))
    paths = {p for _, p in openapi}
    written = {normalise(p) for p in API_PATH.findall(served)}
    assert len(written) > 50
    unknown = sorted(written - paths)
    assert not unknown, f"docs/api.md names paths that /openapi.json does not have: {unknown}"
    wrong = sorted(f"{m} {p}" for m, p in documented(served) - openapi if p.startswith("/api/v1/"))
    assert not wrong, f"docs/api.md names methods that /openapi.json does not have: {wrong}"
    now_served = sorted({normalise(p) for p in API_PATH.findall(gap)} & paths)
    assert not now_served, f"move these out of '{NOT_SERVED}' in docs/api.md: {now_served}"


def cited_rule_ids() -> set[str]:
    cited: set[str] = set()
    for path in (ROOT / "src").rglob("*"):
        if path.suffix in {".py", ".html", ".js", ".txt"}:
            for group in RULE_CITE.findall(path.read_text(encoding="utf-8")):
                cited.update(RULE_ID.findall(group))
    return cited


def test_every_cited_rule_is_defined() -> None:
    cited = cited_rule_ids()
    assert {"T5", "M10", "G15"} <= cited  # the scan sees the code's citations
    # an ID is defined where a rules table row starts with it: `| T2, G8 [12] | … |`
    defined = {
        rule
        for line in RULES_MD.read_text(encoding="utf-8").splitlines()
        if line.startswith("| ")
        for rule in RULE_ID.findall(line.split("|")[1])
    }
    missing = sorted(cited - defined, key=lambda r: (r[0], int(r[1:])))
    assert not missing, f"rule IDs cited in src/ but not defined in docs/rules.md: {missing}"
