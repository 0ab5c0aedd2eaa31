"""Policy inheritance (docs/rules.md "Policies"): a policy is set at the city level and overridden below
it, knob by knob; `(city)` knobs are inherited. Rules G10/T6/M4 (horizon), G13/T8/M8 (cancel)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.policy.presets import DEFAULTS, KNOB_NAMES, PRESETS, Knobs
from yuyue.policy.service import resolve

FAST = settings(max_examples=200, deadline=None)

CHAIN = ["platform", "tianhe", "th-hall", "th-dept"]
HORIZON_KNOBS = ("horizon_rule", "horizon_days", "release_time")


def test_policies_no_rows_gives_city_defaults() -> None:
    policy = resolve("th-hall", CHAIN, {})
    assert policy.knobs == Knobs(**PRESETS["guangzhou-2021"])
    assert policy.preset is None
    assert set(policy.sources.values()) == {"default"}
    assert set(policy.sources) == set(KNOB_NAMES)


def test_t6_g10_district_horizon_platform_onsite_share() -> None:
    """T6 horizon from the district preset; G10 on-site share `(city)` from the platform."""
    rows = {"platform": ("guangzhou-2021", {}), "tianhe": ("tianhe", {})}
    policy = resolve("th-hall", CHAIN, rows)
    assert policy.unit_id == "th-hall"
    assert policy.preset == "tianhe"
    knobs = policy.knobs
    assert (knobs.horizon_rule, knobs.horizon_days, knobs.release_time) == ("calendar_days", 14, "12:00")
    assert (knobs.cancel_rule, knobs.cancel_minutes) == ("before_slot_start", 0)  # T8
    assert knobs.onsite_share_pct == 10
    assert knobs.checkin_before_min == 60
    for name in (*HORIZON_KNOBS, "cancel_rule", "cancel_minutes", "cancel_time"):
        assert policy.sources[name] == "tianhe", name
    for name in ("onsite_share_pct", "onsite_opens", "cutoff_prev_day", "one_live_per", "penalty"):
        assert policy.sources[name] == "platform", name
    assert set(policy.sources.values()) == {"platform", "tianhe"}


def test_t6_override_below_wins_knob_by_knob() -> None:
    rows = {
        "platform": ("guangzhou-2021", {"onsite_share_pct": 20}),
        "tianhe": ("tianhe", {}),
        "th-hall": (None, {"horizon_days": 7, "onsite_share_pct": 5}),
    }
    policy = resolve("th-hall", CHAIN, rows)
    assert policy.preset == "tianhe"
    assert policy.knobs.horizon_days == 7 and policy.sources["horizon_days"] == "th-hall"
    assert policy.knobs.horizon_rule == "calendar_days" and policy.sources["horizon_rule"] == "tianhe"
    assert policy.knobs.release_time == "12:00" and policy.sources["release_time"] == "tianhe"
    assert policy.knobs.onsite_share_pct == 5 and policy.sources["onsite_share_pct"] == "th-hall"
    # the platform's own override counts when nothing below overrides that knob
    above = resolve("tianhe", CHAIN[:2], rows)
    assert above.knobs.onsite_share_pct == 20 and above.sources["onsite_share_pct"] == "platform"


def test_m8_override_on_the_same_unit_beats_its_preset() -> None:
    rows = {"platform": ("guangzhou-2021", {}), "mi-hall": ("gz-medical-insurance", {"cancel_time": "16:00"})}
    policy = resolve("mi-hall", ["platform", "mi-hall"], rows)
    assert policy.preset == "gz-medical-insurance"
    assert policy.knobs.cancel_rule == "prev_working_day"
    assert policy.knobs.cancel_time == "16:00" and policy.sources["cancel_time"] == "mi-hall"


def test_m4_preset_is_the_nearest_one_up_the_tree() -> None:
    rows = {
        "platform": ("guangzhou-2021", {}),
        "tianhe": ("tianhe", {}),
        "th-hall": ("gz-medical-insurance", {}),
    }
    policy = resolve("th-dept", CHAIN, rows)
    assert policy.preset == "gz-medical-insurance"
    assert policy.knobs.horizon_rule == "working_days" and policy.sources["horizon_rule"] == "th-hall"
    # a knob the medical preset leaves open (`(city)`) keeps the nearest value above it
    assert policy.knobs.onsite_share_pct == 10 and policy.sources["onsite_share_pct"] == "platform"
    # units of the chain above the one asked about are not affected by presets below
    assert resolve("tianhe", CHAIN[:2], rows).preset == "tianhe"


# --- property: resolve equals an independent leaf-to-root search -----------------------------------

OVERRIDE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "horizon_days": st.integers(1, 60),
    "release_time": st.sampled_from([None, "00:00", "12:00", "18:00"]),
    "cutoff_prev_day": st.sampled_from([None, "17:30", "16:00"]),
    "onsite_share_pct": st.integers(0, 100),
    "onsite_opens": st.sampled_from(["08:30", "09:00"]),
    "cancel_minutes": st.integers(0, 24 * 60),
    "cancel_time": st.sampled_from([None, "17:30"]),
    "checkin_before_min": st.integers(0, 120),
    "checkin_after_end_min": st.integers(0, 60),
    "max_live_bookings": st.integers(1, 1000),
    "one_live_per": st.sampled_from(["service", "day"]),
    "penalty": st.sampled_from(["city", "medical_insurance", "none"]),
}


@st.composite
def unit_rows(draw: st.DrawFn) -> dict[str, tuple[str | None, dict[str, Any]]]:
    rows: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for uid in CHAIN:
        if draw(st.booleans()):
            continue  # no policy row for this unit
        preset = draw(st.sampled_from([None, *PRESETS]))
        names = draw(st.sets(st.sampled_from(sorted(OVERRIDE_VALUES)), max_size=4))
        rows[uid] = (preset, {name: draw(OVERRIDE_VALUES[name]) for name in sorted(names)})
    return rows


@FAST
@given(unit_rows(), st.integers(1, len(CHAIN)))
def test_policies_resolve_matches_nearest_setting_up_the_tree(
    rows: dict[str, tuple[str | None, dict[str, Any]]], depth: int
) -> None:
    """Each knob comes from the nearest unit (leaf first) that overrides it or whose preset sets
    it, a unit's override beating its own preset; else the built-in city default."""
    chain = CHAIN[:depth]
    policy = resolve(chain[-1], chain, rows)
    values = policy.knobs.model_dump()
    for name in KNOB_NAMES:
        expected_value, expected_source = DEFAULTS[name], "default"
        for uid in reversed(chain):
            if uid not in rows:
                continue
            preset, overrides = rows[uid]
            if name in overrides:
                expected_value, expected_source = overrides[name], uid
                break
            if preset and name in PRESETS[preset]:
                expected_value, expected_source = PRESETS[preset][name], uid
                break
        assert (values[name], policy.sources[name]) == (expected_value, expected_source), name
    presets = [rows[uid][0] for uid in chain if uid in rows and rows[uid][0]]
    assert policy.preset == (presets[-1] if presets else None)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_policies_presets_are_valid_knob_sets(name: str) -> None:
    assert set(PRESETS[name]) <= set(KNOB_NAMES)
    Knobs(**{**DEFAULTS, **PRESETS[name]})
    assert set(PRESETS["guangzhou-2021"]) == set(KNOB_NAMES)  # the city sets every knob
