"""The printable booking receipt (rule T10): an HTML page and a PDF with the same content.

Both are built from one list of labelled rows, so the two formats never disagree. Personal data is
masked again here (the masks are idempotent): a printed receipt never shows a full ID or phone.
The HTML page has no script (the CSP forbids inline script); the QR code is inline SVG.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import segno
from markupsafe import Markup
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A5
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from yuyue.kit.masking import mask_id, mask_name, mask_phone

_CHINA = timezone(timedelta(hours=8))  # no daylight saving in China
_TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
_CID_FONT = "STSong-Light"
# TrueType CJK fonts that Debian/Ubuntu packages install (fonts-wqy-microhei, fonts-wqy-zenhei,
# fonts-arphic-uming); the first one present is embedded when YUYUE_PDF_FONT is not set.
SYSTEM_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)


def default_font() -> str | None:
    """An installed CJK TrueType font to embed, or None (then the PDF names STSong-Light and the
    reader's viewer supplies the glyphs)."""
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


def _font(font_path: str | None) -> str:
    """Registers the font once and returns its name: the given TrueType file (embedded), else the
    CID font STSong-Light that every PDF reader supplies (not embedded)."""
    if font_path is None:
        if _CID_FONT not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(UnicodeCIDFont(_CID_FONT))
        return _CID_FONT
    name = "YuyueCJK-" + hashlib.sha256(font_path.encode()).hexdigest()[:12]
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, font_path))
    return name


# The booking number in a monospaced face whose I, 1 and l differ (serifed I), embedded as a subset.
MONO_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
)


def _mono_font(fallback: str) -> str:
    path = next((p for p in MONO_FONTS if Path(p).is_file()), None)
    if path is None:
        return fallback
    if "YuyueMono" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("YuyueMono", path))
    return "YuyueMono"


def render_receipt_pdf(booking: dict[str, Any], hall: dict[str, str], font_path: str | None = None) -> bytes:
    number = str(booking["number"])
    font = _font(font_path)
    mono = _mono_font(font)

    def style(size: float, **extra: Any) -> ParagraphStyle:
        return ParagraphStyle(
            f"r{size}", fontName=font, fontSize=size, leading=size * 1.4, wordWrap="CJK", **extra
        )

    def para(text: str, st: ParagraphStyle) -> Paragraph:
        return Paragraph(str(Markup.escape(text)), st)

    body, small = style(9), style(8)
    qr_size = 30 * mm
    qr = Drawing(qr_size, qr_size)
    qr.add(QrCodeWidget(number, barLevel="M", barWidth=qr_size, barHeight=qr_size))
    head = Table(
        [
            [
                [
                    para("预约号", small),
                    Paragraph(
                        str(Markup.escape(number)),
                        ParagraphStyle("number", fontName=mono, fontSize=16, leading=22, charSpace=1.5),
                    ),
                    para(f"状态：{STATUS_TEXT.get(booking['status'], booking['status'])}", style(11)),
                ],
                qr,
            ]
        ],
        colWidths=[None, qr_size],
        style=[("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("LEFTPADDING", (0, 0), (-1, -1), 0)],
    )
    details = Table(
        [[para(label, body), para(value, body)] for label, value in _rows(booking, hall)],
        colWidths=[20 * mm, None],
        style=TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TEXTCOLOR", (0, 0), (0, -1), colors.grey),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        ),
    )
    story = [
        para("预约回执", style(15, alignment=1, spaceAfter=6)),
        head,
        Spacer(0, 3 * mm),
        details,
        Spacer(0, 3 * mm),
        para("温馨提示", style(10, spaceAfter=2)),
        *(para(f"{i}. {text}", small) for i, text in enumerate(REMINDERS, 1)),
    ]
    buffer = io.BytesIO()
    margin = 12 * mm
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A5,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin,
        bottomMargin=margin,
        title=f"预约回执 {number}",
        author=hall.get("name") or "",
        subject="预约回执",
        lang="zh-CN",
        displayDocTitle=True,
    )
    doc.build(story)
    return buffer.getvalue()
