"""The printable receipt (rule T10): HTML and PDF render the booking in Chinese, with its QR code;
the PDF is tagged PDF/UA-1 with its fonts embedded (decision 0098)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from yuyue.booking.receipt import render_receipt_html, render_receipt_pdf

BOOKING: dict[str, Any] = {
    "number": "I042026120100002",
    "status": "booked",
    "service_name": "居民身份证办理",
    "department": "公安户政",
    "hall_name": "天河区政务服务中心",
    "slot": {"start": "2026-12-01T09:00:00+08:00", "end": "2026-12-01T10:00:00+08:00"},
    "quantity": 1,
    "channel": "web",
    "business_types": ["换领"],
    "applicant": {"name": "张*", "id_number": "4401**********123X", "phone": "138****5678"},
    "company": None,
    "created_at": "2026-11-25T10:00:00+08:00",
    "cancel_deadline": "2026-12-01T08:00:00+08:00",
    "checkin_window": {"from": "2026-12-01T08:00:00+08:00", "to": "2026-12-01T10:00:00+08:00"},
    "rebook_of": None,
    "bundle_of": None,
}
HALL = {"name": "天河区政务服务中心", "address": "广州市天河区华观路1号", "hotline": "020-12345678"}
CJK_TTF = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")  # TrueType outlines (fonts-wqy-microhei)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout


def test_html_receipt() -> None:
    html = render_receipt_html(BOOKING, HALL)
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert 'lang="zh-CN"' in html and 'name="viewport"' in html and "<title>预约回执</title>" in html
    assert "I042026120100002" in html and "<svg" in html
    assert "020-12345678" in html and "广州市天河区华观路1号" in html
    assert "已预约" in html and "居民身份证办理" in html and "公安户政" in html
    assert "2026年12月1日（周二） 09:00–10:00" in html  # slot
    assert "2026年12月1日（周二） 08:00–10:00" in html  # check-in window
    assert "2026年12月1日（周二） 08:00<" in html  # cancel deadline
    assert "4401**********123X" in html and "138****5678" in html and "换领" in html
    assert "@media print" in html
    assert "<script" not in html.lower()
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)  # no inline event handlers (CSP)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        ("checked_in", "已取号"),
        ("served", "已办结"),
        ("cancelled", "已取消"),
        ("no_show", "爽约"),
        ("excused", "已免责"),
    ],
)
def test_html_status_in_chinese(status: str, text: str) -> None:
    assert text in render_receipt_html({**BOOKING, "status": status}, HALL)


def test_html_escapes_and_masks() -> None:
    booking = copy.deepcopy(BOOKING)
    booking["service_name"] = "<b>换证</b>"
    booking["company"] = {"uscc": "91440101MA5CXXXX0X", "name": "广州某某有限公司"}
    booking["applicant"] = {"name": "张三", "id_number": "440106199001011234", "phone": "13812345678"}
    html = render_receipt_html(booking, HALL)
    assert "<b>换证</b>" not in html and "&lt;b&gt;" in html
    assert "广州某某有限公司" in html and "91440101MA5CXXXX0X" in html
    assert "440106199001011234" not in html and "13812345678" not in html and "张三" not in html


def test_pdf_receipt(tmp_path: Path) -> None:
    pdf = render_receipt_pdf(BOOKING, HALL)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf, tmp_path)
    assert "I042026120100002" in text
    assert "居民身份证办理" in text and "已预约" in text
    assert text.count("\f") == 1  # one page


def test_pdf_title_metadata(tmp_path: Path) -> None:
    if shutil.which("pdfinfo") is None:
        pytest.skip("pdfinfo (poppler-utils) is not installed")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(render_receipt_pdf(BOOKING, HALL))
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    assert "预约回执 I042026120100002" in info


@pytest.mark.skipif(not CJK_TTF.exists(), reason="no CJK TrueType font installed")
def test_pdf_with_embedded_font(tmp_path: Path) -> None:
    pdf = render_receipt_pdf(BOOKING, HALL, font_path=str(CJK_TTF))
    assert b"/FontFile2" in pdf_objects(pdf)  # the TrueType font is embedded
    text = pdf_text(pdf, tmp_path)
    assert "I042026120100002" in text and "居民身份证办理" in text


def pdf_objects(pdf: bytes) -> bytes:
    """The file with its Flate streams inflated (the catalog may sit in a compressed object stream):
    enough to look for dictionary entries without a PDF library."""
    parts = [pdf]
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.DOTALL):
        try:
            parts.append(zlib.decompressobj().decompress(match.group(1)))
        except zlib.error:
            continue
    return b"\n".join(parts)


def test_pdf_is_tagged_pdf_ua(tmp_path: Path) -> None:
    """Decision 0098: a structure tree, marked content, the document language, the title shown by
    the viewer, the PDF/UA identifier in the XMP metadata; headings, the table of rows with its row
    headers, the list of reminders and the QR code as a figure with alternate text."""
    pdf = render_receipt_pdf(BOOKING, HALL)
    body = pdf_objects(pdf)
    assert b"/StructTreeRoot" in body and b"/ParentTree" in body
    assert re.search(rb"/MarkInfo\s*<<\s*/Marked\s+true", body)
    assert re.search(rb"/Lang\s*\(zh-CN\)", body)
    assert re.search(rb"/DisplayDocTitle\s+true", body)
    assert re.search(rb"pdfuaid:part=\"1\"|<pdfuaid:part>1</pdfuaid:part>", body)  # XMP: PDF/UA-1
    for tag in (b"/H1", b"/H2", b"/Table", b"/TH", b"/TD", b"/L", b"/LI", b"/Figure"):
        assert re.search(rb"/S\s*" + re.escape(tag) + rb"\b", body), tag
    alt = "预约号二维码 I042026120100002".encode("utf-16-be").hex().upper().encode()
    assert b"/Alt" in body and alt in body.upper()
    if shutil.which("pdfinfo") is not None:
        path = tmp_path / "receipt.pdf"
        path.write_bytes(pdf)
        info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
        assert re.search(r"^Tagged:\s+yes", info, re.MULTILINE)
        assert "预约回执 I042026120100002" in info and "天河区政务服务中心" in info  # title, author


def test_pdf_embeds_every_font(tmp_path: Path) -> None:
    """Every font is an embedded subset: the CJK face and the monospaced face of the number."""
    if shutil.which("pdffonts") is None:
        pytest.skip("pdffonts (poppler-utils) is not installed")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(render_receipt_pdf(BOOKING, HALL, font_path=str(CJK_TTF) if CJK_TTF.exists() else None))
    lines = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout
    fonts = lines.splitlines()[2:]
    assert fonts
    for line in fonts:
        name, columns = line.split()[0], line.split()[-5:]
        assert columns[0] == "yes" and columns[1] == "yes", line  # emb, sub
        assert re.match(r"[A-Z]{6}\+", name), line  # a subset
    if Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf").exists():
        assert any("+YuyueMono" in line for line in fonts)  # the number's face (receipt.MONO_FONTS)


def test_pdf_prints_markup_as_text_and_logs_no_pdf_ua_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Booking fields are text in the PDF, never markup (nothing fetched, decision 0098); WeasyPrint
    reports what it knows breaks PDF/UA (an image without alt text, no document language) as errors,
    and there are none."""
    booking = copy.deepcopy(BOOKING)
    booking["service_name"] = '<img src="file:///etc/passwd">换证'
    with caplog.at_level("WARNING", logger="weasyprint"):
        pdf = render_receipt_pdf(booking, HALL)
    assert not [r for r in caplog.records if r.name.startswith("weasyprint")], caplog.text
    assert '<img src="file:///etc/passwd">换证' in pdf_text(pdf, tmp_path)
