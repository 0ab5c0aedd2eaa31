"""SMS templates: Chinese, one SMS each (at most 70 characters with the sign, rules T7, T11, G9,
G13), naming the booking number where there is one and the hotline to call.

A message stores its template id and parameters; the text is rendered at delivery time, so a fixed
template applies to every message not yet sent. The same texts are what a deployment registers as
its Aliyun/Tencent templates (`{name}` → `${name}` or `{1}`…); the providers are sent the
parameters, the console provider the rendered text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from yuyue.clock import as_local

SMS_LIMIT = 70  # characters of one SMS, sign included


@dataclass(frozen=True)
class Template:
    id: str
    text: str
    # The free-text parameter that is shortened, if needed, so the whole stays one SMS.
    elastic: str | None = None


TEMPLATES: dict[str, Template] = {
    template.id: template
    for template in (
        # rule T7/G9: success, keep the number, bring the documents, come on time
        Template("booked", "预约成功{when}{hall}，号{number}，带齐材料准时到，咨询{hotline}", "hall"),
        # rule G11: a freed seat went to the waiting list
        Template("allocated", "排队成功，已约{when}{hall}，号{number}，请准时到，咨询{hotline}", "hall"),
        # rules T7, T11: every cancel is confirmed
        Template("cancelled", "您的预约{number}（{when}）已取消，如需办理请重新预约，咨询{hotline}"),
        # docs/rules.md "A closed day that has bookings": the hall cancelled, the reason and where to
        # book again (kind `cancelled`)
        Template(
            "cancelled_by_hall", "预约{number}因{reason}取消，请经{link}重新预约，咨询{hotline}", "reason"
        ),
        # docs/rules.md "Waiting list": an entry whose every date passed (or closed) ends
        Template(
            "expired",
            "您排队的{service}已结束：所选日期已过或停办，如需办理请重新预约，咨询{hotline}",
            "service",
        ),
        Template("rescheduled", "预约{number}改至{when}{hall}，带齐材料准时到，咨询{hotline}", "hall"),
        Template("reminder", "提醒：{when}{hall}，号{number}，带齐材料准时到，咨询{hotline}", "hall"),
        # rule G13: a missed slot is a no-show, and the citizen is told
        Template("no_show", "您{when}的预约{number}未按时签到，已记爽约一次，咨询{hotline}"),
        # rules M9, G15: a ban is announced
        Template("banned", "因爽约您在{unit}的预约资格暂停至{until}，咨询{hotline}", "unit"),
        # rule M6: phone verification
        Template("code", "验证码{code}，5分钟内有效，请勿告诉他人。"),
        # rule G12 and others: an alert for administrators
        Template("alert", "预约平台提醒：{unit}{detail}，请登录管理端处理。", "detail"),
        # rules G4, G20: an approved capacity change is announced to the hall's administrators
        Template(
            "capacity_approved",
            "预约平台通知：{unit}号源调整申请（编号{request}）已批准：{days}每日{capacity}个。",
            "unit",
        ),
    )
}

KINDS = tuple(TEMPLATES)


def when(value: str | datetime) -> str:
    """`12月3日9时` (slots are whole hours, rule G11) or `12月3日9:30`."""
    moment = as_local(datetime.fromisoformat(value) if isinstance(value, str) else value)
    clock_part = f"{moment.hour}时" if moment.minute == 0 else f"{moment.hour}:{moment.minute:02d}"
    return f"{moment.month}月{moment.day}日{clock_part}"


def day(value: str | date) -> str:
    parsed = date.fromisoformat(value) if isinstance(value, str) else value
    return f"{parsed.year}年{parsed.month}月{parsed.day}日"


def signed(sign_name: str, body: str) -> str:
    return f"【{sign_name}】{body}"


def fits(template_id: str, params: dict[str, str], sign_name: str) -> bool:
    """Whether the text fits one SMS as it is (`render` need not shorten it)."""
    return len(signed(sign_name, TEMPLATES[template_id].text.format(**params))) <= SMS_LIMIT


def render(template_id: str, params: dict[str, str], sign_name: str) -> str:
    """The text of one SMS, sign included, never longer than SMS_LIMIT: the template's elastic
    parameter (a hall or unit name) is shortened if a long one would need a second SMS."""
    template = TEMPLATES[template_id]
    values = dict(params)
    text = signed(sign_name, template.text.format(**values))
    if len(text) > SMS_LIMIT and template.elastic:
        excess = len(text) - SMS_LIMIT
        value = values[template.elastic]
        keep = len(value) - excess - 1  # one character for the "…"
        values[template.elastic] = value[:keep] + "…" if keep > 0 else ""
        text = signed(sign_name, template.text.format(**values))
    return text[:SMS_LIMIT]
