"""Services return typed answers and the routes' response models check them (decision 0085).

A route names its answer's model (built on `kit.answers.Answer`); FastAPI validates what the
service returned against it before sending it. These tests make a service give a field the model
lacks, or a wrong type, and expect the route to refuse it; and they check that the JSON the models
write is byte for byte the JSON the dict answers wrote (docs/api.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import types
import typing
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import ValidationError

from tests.conftest import Api
from tests.ids import resident_id
from yuyue.booking.schemas import AvailabilityOut, BookingOut
from yuyue.kit.answers import Answer
from yuyue.onsite import api as onsite_api
from yuyue.onsite.queue import PublicQueue, QueueServing, QueueWaiting

DAY = "2026-12-03"
# The packages whose services return typed answers (issue 17): every response model of their routes
# is an `Answer`, so it checks what the service gave instead of documenting it.
TYPED = (
    "yuyue.booking.api",
    "yuyue.waitlist.api",
    "yuyue.onsite.api",
    "yuyue.admin.api",
    "yuyue.catalogue.api",
    "yuyue.penalties.api",
    "yuyue.calendar.api",
    "yuyue.identity.api",
)


def _models(annotation: Any) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, Answer):
        return [annotation]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType) and args:
        return [m for a in args if a is not type(None) for m in _models(a)]
    return [annotation]


def test_every_response_model_of_the_typed_packages_is_an_answer() -> None:
    checked = 0
    for name in TYPED:
        module = importlib.import_module(name)
        routers = [r for r in vars(module).values() if isinstance(r, APIRouter)]
        for route in (route for router in routers for route in router.routes):
            if not isinstance(route, APIRoute) or route.response_model is None:
                continue  # a Response of its own: bytes (availability), a stream, 204, a receipt
            for model in _models(route.response_model):
                assert isinstance(model, type) and issubclass(model, Answer), (route.path, model)
            checked += 1
    assert checked >= 40


@dataclasses.dataclass(slots=True, kw_only=True)
class QueueWithMore(PublicQueue):
    internal_note: str  # a field the contract does not have


async def test_a_field_the_model_lacks_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await api.hall()
    assert (await api.client.get("/api/v1/halls/hall-a/queue")).status_code == 200

    async def leaky(session: Any, hall_id: str) -> PublicQueue:
        return QueueWithMore(hall_id=hall_id, waiting=[], serving=[], internal_note="not for citizens")

    monkeypatch.setattr(onsite_api, "public_queue", leaky)
    capsys.readouterr()
    refused = await api.client.get("/api/v1/halls/hall-a/queue")
    assert refused.status_code == 500 and refused.json()["code"] == "internal_error"
    assert b"not for citizens" not in refused.content
    logged = capsys.readouterr().out
    assert "ResponseValidationError" in logged and "extra_forbidden" in logged and "internal_note" in logged


async def test_a_wrong_type_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await api.hall()

    async def wrong(session: Any, hall_id: str) -> PublicQueue:
        waiting = QueueWaiting(
            number="T1", call_number="W001", kind="walk_in", service_id=1, estimated_wait_s=None
        )
        serving = QueueServing(number="T2", call_number="W002", counter_id="1", counter="一号窗口")  # type: ignore[arg-type]
        return PublicQueue(hall_id=hall_id, waiting=[waiting], serving=[serving])

    monkeypatch.setattr(onsite_api, "public_queue", wrong)
    capsys.readouterr()
    refused = await api.client.get("/api/v1/halls/hall-a/queue")
    assert refused.status_code == 500 and refused.json()["code"] == "internal_error"
    logged = capsys.readouterr().out
    assert "ResponseValidationError" in logged and "counter_id" in logged and "int_type" in logged


def test_answers_refuse_unknown_fields_and_lax_types() -> None:
    with pytest.raises(ValidationError):
        AvailabilityOut.model_validate({"service_id": "1", "days": []})  # "1" is not 1
    with pytest.raises(ValidationError):
        AvailabilityOut.model_validate({"service_id": 1, "days": [], "extra": True})


async def test_a_booking_read_is_the_json_its_booking_answered(api: Api) -> None:
    """GET /appointments/{number} (typed, written by BookingOut) answers byte for byte what
    POST /appointments (the booking path's dict) answered; and both pass the model."""
    await api.hall()
    service = await api.service()
    citizen = await api.login(resident_id(1), name="张三丰", phone="13812345678")
    slot = next(s for s in await api.slots(service["id"], DAY) if s["status"] == "open")
    booked = await api.book(citizen, slot["id"], business_types=["换领"])
    assert booked.status_code == 201, booked.text
    number = booked.json()["number"]
    read = await api.client.get(f"/api/v1/appointments/{number}", headers=citizen)
    assert read.status_code == 200 and read.content == booked.content
    mine = await api.client.get("/api/v1/appointments", headers=citizen)
    assert mine.content == b"[" + booked.content + b"]"
    BookingOut.model_validate_json(booked.content)


async def test_availability_bytes_pass_their_model(api: Api) -> None:
    """Availability is encoded once per cache entry (decision 0013), not through a response model;
    its answer still has exactly the contract's fields and types."""
    await api.hall()
    service = await api.service()
    body = (await api.client.get(f"/api/v1/services/{service['id']}/availability")).content
    answer = AvailabilityOut.model_validate_json(body)
    assert answer.days and json.loads(answer.model_dump_json(exclude_unset=True)) == json.loads(body)
