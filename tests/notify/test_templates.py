"""Every template is one SMS (≤ 70 characters, sign included) with the longest realistic values,
names the booking number where there is one and the hotline (rules T7, T11, G9, G13)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.notify import templates
from yuyue.notify.templates import SMS_LIMIT, TEMPLATES, render

SIGN = "广州预约"  # the default sign name
# Longest realistic values: a 4-digit hall code (docs/rules.md: codes widen to 4 digits), 31 December
# at 16:00, a 12-character fixed-line hotline, and long hall and unit names.
LONGEST = {
    "number": "I1234" + "20261231" + "99999",  # 18 characters
    "when": templates.when("2026-12-31T16:30:00+08:00"),
    "hall": "广州市天河区政务服务中心第二办事大厅（天河北路）",
    "hotline": "020-83123456",
    "until": templates.day("2027-12-31"),
    "unit": "广州市海珠区人民政府政务服务数据管理局",
    "code": "123456",
    "detail": "排队人数超过放号量",
    "request": "2000000000",  # a capacity request's id
    "days": "12月31日至12月31日",
    "capacity": "100000",
    "service": "港澳台居民居住证申领及换领补领业务",
    "reason": "台风红色预警信号生效，全天停止办理业务",
    "link": "yy.gz.gov.cn",  # the longest YUYUE_NOTIFY_REBOOK_LINK (12 characters)
}


def test_every_template_fits_one_sms_with_the_longest_values() -> None:
    assert set(TEMPLATES) == {
        "booked", "allocated", "cancelled", "rescheduled", "reminder", "no_show", "banned", "code", "alert",
        "capacity_approved", "cancelled_by_hall", "expired",
    }  # fmt: skip
    for template_id, template in TEMPLATES.items():
        text = render(template_id, LONGEST, SIGN)
        assert len(text) <= SMS_LIMIT, (template_id, len(text), text)
        assert text.startswith("【广州预约】")
        if "{number}" in template.text:
            assert LONGEST["number"] in text, template_id
        if "{hotline}" in template.text:
            assert "020-83123456" in text, template_id
        if template_id not in ("code", "alert", "capacity_approved"):  # citizens' texts only
            assert "{hotline}" in template.text, template_id  # every citizen message has a hotline
        assert "{" not in text


def test_typical_hall_names_are_never_cut() -> None:
    """A 2-digit hall code, a whole-hour slot (rule G11), a 12-character hotline."""
    values = {**LONGEST, "hall": "广州市天河区政务服务中心", "number": "I042026120300001"}
    values["when"] = templates.when("2026-12-03T09:00:00+08:00")
    for template_id in ("booked", "allocated", "rescheduled", "reminder"):
        assert "广州市天河区政务服务中心" in render(template_id, values, SIGN), template_id


@settings(max_examples=200, deadline=None)
@given(
    hall=st.text(alphabet="广州市天河区政务服务中心大厅一二三（）", min_size=1, max_size=40),
    hotline=st.from_regex(r"0[0-9]{2,3}-[0-9]{7,8}|12345", fullmatch=True),
    hour=st.integers(min_value=0, max_value=23),
    code_digits=st.integers(min_value=2, max_value=4),
)
def test_any_hall_name_still_fits_and_keeps_number_and_hotline(
    hall: str, hotline: str, hour: int, code_digits: int
) -> None:
    number = "I" + "9" * code_digits + "20261231" + "00001"
    values = {**LONGEST, "hall": hall, "hotline": hotline, "number": number}
    values["when"] = templates.when(f"2026-12-31T{hour:02d}:00:00+08:00")
    for template_id in TEMPLATES:
        text = render(template_id, values, SIGN)
        assert len(text) <= SMS_LIMIT
        if "{number}" in TEMPLATES[template_id].text:
            assert number in text
        if "{hotline}" in TEMPLATES[template_id].text:
            assert hotline in text


def test_when_formats_whole_hours_and_minutes() -> None:
    assert templates.when("2026-12-03T09:00:00+08:00") == "12月3日9时"
    assert templates.when("2026-12-03T01:30:00+00:00") == "12月3日9:30"  # shown in platform time
    assert templates.day("2026-12-13") == "2026年12月13日"
