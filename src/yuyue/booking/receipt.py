"""The printable booking receipt (rule T10): an HTML page and a PDF with the same content.

Both are built from one list of labelled rows, so the two formats never disagree. Personal data is
masked again here (the masks are idempotent): a printed receipt never shows a full ID or phone.
The HTML page has no script (the CSP forbids inline script); the QR code is inline SVG.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import segno
from markupsafe import Markup

from yuyue.kit.masking import mask_id, mask_name, mask_phone

_CHINA = timezone(timedelta(hours=8))  # no daylight saving in China
_TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
# TrueType CJK fonts that Debian/Ubuntu packages install (fonts-wqy-microhei, fonts-wqy-zenhei,
# fonts-arphic-uming); the first one present is embedded when YUYUE_PDF_FONT is not set.
SYSTEM_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)


def default_font() -> str | None:
    """An installed CJK TrueType font to embed, or None (then the CJK font that fontconfig finds is
    embedded; with none installed the CJK glyphs are missing)."""
    return next((path for path in SYSTEM_FONTS if Path(path).is_file()), None)


STATUS_TEXT = {
    "booked": "已预约",
    "checked_in": "已取号",
    "served": "已办结",
    "cancelled": "已取消",
    "no_show": "爽约",
    "excused": "已免责",
}
CHANNEL_TEXT = {
    "web": "网站",
    "wechat": "微信",
    "app": "移动端",
    "provincial_portal": "省政务服务网",
    "onsite": "现场",
    "api": "接口",
}
REMINDERS = (  # rules T3, M7, G13, G15
    "请携带该事项办事指南所列的全部申请材料，所带材料须与预约信息一致。",
    "请携带本人居民身份证原件（或社保卡）；单位代办的，另带授权委托书及经办人身份证原件。",
    "请按预约时段准时到达办事大厅。",
    "请在取号时间内到大厅凭身份证（或社保卡）取号。",
    "超过取号时间未取号的，本次预约失效并记为爽约；爽约多次将暂停预约资格。",
    "如需取消，请在取消截止时间前办理。",
)


def _when(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=_CHINA) if moment.tzinfo is None else moment.astimezone(_CHINA)


_WEEKDAYS = "一二三四五六日"


def _day(moment: datetime) -> str:
    """`2026年12月1日（周二）`: the weekday with the date, as on the portal's pages."""
    return f"{moment.year}年{moment.month}月{moment.day}日（周{_WEEKDAYS[moment.weekday()]}）"


def _span(start: str, end: str) -> str:
    """`2026年12月1日（周二） 09:00–10:00`; the end date is spelt out only when it differs."""
    a, b = _when(start), _when(end)
    tail = f"{b:%H:%M}" if a.date() == b.date() else f"{_day(b)} {b:%H:%M}"
    return f"{_day(a)} {a:%H:%M}–{tail}"


def _rows(booking: dict[str, Any], hall: dict[str, str]) -> list[tuple[str, str]]:
    slot, window = booking["slot"], booking.get("checkin_window")
    applicant = booking.get("applicant") or {}
    rows = [
        ("办理事项", booking.get("service_name") or "—"),
        ("办理部门", booking.get("department") or "—"),
        ("办事大厅", hall.get("name") or booking.get("hall_name") or "—"),
        ("大厅地址", hall.get("address") or "—"),
        ("咨询电话", hall.get("hotline") or "—"),
        ("预约时段", _span(slot["start"], slot["end"])),
        ("取号时间", _span(window["from"], window["to"]) if window else "—"),
        ("取消截止", f"{_day(_when(booking['cancel_deadline']))} {_when(booking['cancel_deadline']):%H:%M}"),
        ("办理数量", str(booking.get("quantity", 1))),
        ("业务类型", "、".join(booking.get("business_types") or []) or "—"),
        ("申请人", mask_name(applicant.get("name") or "")),
        ("身份证号", mask_id(applicant.get("id_number") or "")),
        ("手机号码", mask_phone(applicant.get("phone") or "")),
    ]
    if company := booking.get("company"):
        rows.append(("代办单位", f"{company['name']}（统一社会信用代码 {company['uscc']}）"))
    if booking.get("rebook_of"):
        rows.append(("原预约号", str(booking["rebook_of"])))
    rows.append(("预约渠道", CHANNEL_TEXT.get(booking.get("channel", ""), "—")))
    return rows


def receipt_rows(booking: dict[str, Any], hall: dict[str, str]) -> list[tuple[str, str]]:
    """The labelled rows of the receipt, for pages that set them in their own layout."""
    return _rows(booking, hall)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True)


def render_receipt_html(booking: dict[str, Any], hall: dict[str, str]) -> str:
    number = str(booking["number"])
    qr_svg = segno.make(number, error="m").svg_inline(scale=4)
    return (
        _environment()
        .get_template("receipt.html")
        .render(
            number=number,
            status=booking["status"],
            status_text=STATUS_TEXT.get(booking["status"], booking["status"]),
            qr_svg=Markup(qr_svg),  # noqa: S704 - segno's own markup; the number is alphanumeric
            rows=_rows(booking, hall),
            reminders=REMINDERS,
        )
    )


# The booking number in a monospaced face whose I, 1 and l differ (serifed I), embedded as a subset.
MONO_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
)


def _faces(font_path: str | None) -> list[dict[str, str]]:
    """The @font-face rules: the given CJK font and the monospaced face, as file URLs."""
    faces = [{"family": "YuyueCJK", "url": Path(font_path).resolve().as_uri()}] if font_path else []
    if mono := next((p for p in MONO_FONTS if Path(p).is_file()), None):
        faces.append({"family": "YuyueMono", "url": Path(mono).as_uri()})
    return faces


def render_receipt_pdf(booking: dict[str, Any], hall: dict[str, str], font_path: str | None = None) -> bytes:
    """The receipt as a tagged PDF/UA-1 file (decision 0098): structure tree, document language zh-CN,
    the title shown by viewers, every font embedded as a subset. Drawn by WeasyPrint from
    receipt_pdf.html with the same rows as the HTML receipt; `font_path` is a CJK TrueType font to
    embed (else fontconfig's CJK font is). Only local files are read (the fonts)."""
    import weasyprint  # loads pango through cffi: only when a PDF is asked for, not at app start

    number = str(booking["number"])
    qr_svg = segno.make(number, error="m").svg_inline(omitsize=True, title=f"预约号二维码 {number}")
    html = (
        _environment()
        .get_template("receipt_pdf.html")
        .render(
            number=number,
            author=hall.get("name") or "",
            status_text=STATUS_TEXT.get(booking["status"], booking["status"]),
            qr_svg=Markup(qr_svg),  # noqa: S704 - segno's own markup; the number is alphanumeric
            rows=_rows(booking, hall),
            reminders=REMINDERS,
            faces=_faces(font_path),
        )
    )
    fetcher = weasyprint.URLFetcher(allowed_protocols=("file",))
    pdf: bytes = weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf(pdf_variant="pdf/ua-1")
    return pdf
