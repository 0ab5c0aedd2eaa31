"""Identity document numbers: GB 11643 resident ID check digit, GB 32100 USCC check character,
and shape checks for the other document types of docs/api.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

ID_TYPES = ("resident_id", "passport", "hk_macao_permit", "taiwan_permit", "foreigner_permanent_id")

_GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_GB11643_CHECK = "10X98765432"

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_SHAPES = {
    "passport": re.compile(r"^[A-Z0-9]{5,17}$"),
    "hk_macao_permit": re.compile(r"^[HM][0-9]{8,10}$|^C[0-9A-Z]{8}$"),
    "taiwan_permit": re.compile(r"^[0-9]{8}$|^T[0-9]{8}$"),
    # 外国人永久居留身份证: 15 characters (2004 format) or 18 digits (2023 format, starts with 9).
    "foreigner_permanent_id": re.compile(r"^[A-Z]{3}[0-9]{12}$|^9[0-9]{16}[0-9X]$"),
}


@dataclass(frozen=True)
class ResidentId:
    number: str
    birth_date: date
    gender: str  # "M" or "F"


def gb11643_check_char(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, _GB11643_WEIGHTS, strict=True))
    return _GB11643_CHECK[total % 11]


def parse_resident_id(number: str) -> ResidentId | None:
    """An 18-character resident ID with a valid check digit and a real birth date, or None."""
    number = number.strip().upper()
    if not re.fullmatch(r"[0-9]{17}[0-9X]", number):
        return None
    if gb11643_check_char(number[:17]) != number[17]:
        return None
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None
    if born.year < 1900:
        return None
    return ResidentId(number=number, birth_date=born, gender="M" if int(number[16]) % 2 else "F")


def normalise_id(id_type: str, number: str) -> str | None:
    """The canonical form of a document number of that type, or None when it is not valid."""
    number = number.strip().upper()
    if id_type == "resident_id":
        parsed = parse_resident_id(number)
        return parsed.number if parsed else None
    shape = _SHAPES.get(id_type)
    if shape is None or not shape.fullmatch(number):
        return None
    return number


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_CHARS.index(ch) * weight for ch, weight in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def valid_uscc(code: str) -> bool:
    """GB 32100-2015 unified social credit code (统一社会信用代码) with its check character."""
    code = code.strip().upper()
    if len(code) != 18 or any(ch not in _USCC_CHARS for ch in code):
        return False
    if not code[2:8].isdigit():
        return False
    return uscc_check_char(code[:17]) == code[17]
