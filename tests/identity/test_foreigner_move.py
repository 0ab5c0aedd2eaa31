"""Issue 19 (rule G8 login): a foreigner's passport held with one phone is moved to the holder's new
phone at a hall, by a clerk who saw the holder and the document; audited. Online nothing moves it."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, raw
from tests.identity.conftest import confirmed_phone
from tests.identity.test_providers import _foreigner, _next_code_window
from tests.onsite.conftest import kiosk, staff

OLD, NEW = "13700137000", "13600136000"
PASSPORT = "E12345678"
MOVE = "/api/v1/halls/hall-a/foreigner-documents/move"


async def _move(api: Api, headers: dict[str, str], **body: Any) -> Any:
    return await api.client.post(
        MOVE, json={"id_type": "passport", "id_number": PASSPORT, "phone": NEW, **body}, headers=headers
    )


async def test_a_clerk_moves_a_passport_to_a_new_phone_audited(api: Api) -> None:
    await api.hall()
    await api.hall("hall-b")
    owner = await _foreigner(api, PASSPORT, OLD, await confirmed_phone(api, OLD))
    assert owner.status_code == 200, owner.text
    old_session = {"Authorization": f"Bearer {owner.json()['token']}"}
    await _next_code_window(api)
    refused = await _foreigner(api, PASSPORT, NEW, await confirmed_phone(api, NEW))
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_code"  # not online

    clerk = await staff(api)
    # who may not: a kiosk, a clerk of another hall, a citizen, no one
    assert (await _move(api, await kiosk(api))).status_code == 403
    assert (await _move(api, await staff(api, "hall-b"))).status_code == 403
    assert (await _move(api, old_session)).status_code == 401
    assert (await _move(api, {})).status_code == 401
    # bad input and unknown documents change nothing
    for body, code in (
        ({"id_type": "resident_id"}, "validation_error"),
        ({"phone": "12345"}, "validation_error"),
        ({"id_number": "E00000001"}, "not_found"),
    ):
        answer = await _move(api, clerk, **body)
        assert answer.json()["code"] == code, (body, answer.text)
    assert (await api.client.get("/api/v1/me", headers=old_session)).status_code == 200

    moved = await _move(api, clerk)
    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "citizen": {
            "id_type": "passport",
            "id_number": "E1*****78",
            "name": "J*********",
            "phone": "136****6000",
        },
        "sessions_ended": 1,
    }
    # the old phone's session has ended; the old phone no longer logs in with the passport
    assert (await api.client.get("/api/v1/me", headers=old_session)).status_code == 401
    await _next_code_window(api)
    old_again = await _foreigner(api, PASSPORT, OLD, await confirmed_phone(api, OLD))
    assert old_again.status_code == 422 and old_again.json()["code"] == "invalid_code"
    await _next_code_window(api)
    new = await _foreigner(api, PASSPORT, NEW, await confirmed_phone(api, NEW))
    assert new.status_code == 200, new.text
    me = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {new.json()['token']}"})
    assert me.json()["citizen"] == {
        "id_type": "passport",
        "id_number": PASSPORT,
        "name": "John Smith",
        "phone": NEW,
    }
    assert (await raw(api, "SELECT count(*) FROM citizens"))[0][0] == 1  # the same record

    audit = await api.client.get("/api/v1/admin/audit?unit_id=hall-a", headers=api.admin())
    [entry] = [e for e in audit.json() if e["action"] == "foreigner.move_document"]
    assert entry["before"] == {"phone": "137****7000"}
    assert entry["after"] == {"phone": "136****6000", "id_type": "passport", "id_number": "E1*****78"}
    assert PASSPORT not in str(audit.json()) and NEW not in str(audit.json())
