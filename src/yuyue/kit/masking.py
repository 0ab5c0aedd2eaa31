"""Masking of personal data in answers: `4401**********123X`, `138****5678`, `张*`."""

from __future__ import annotations


def mask_id(number: str) -> str:
    """4401**********123X: at most four characters at each end, and never more than half shown.

    A resident ID (18) keeps four and four; a passport of nine keeps two and two (E1*****78), so
    a short document number is not almost whole in the answer (M6).
    """
    keep = min(4, len(number) // 4)
    if keep == 0:
        return "*" * len(number)
    return number[:keep] + "*" * (len(number) - 2 * keep) + number[-keep:]


def mask_phone(phone: str) -> str:
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_email(address: str) -> str:
    """a****@example.gov.cn: the first character of the mailbox and the whole domain."""
    local, _, domain = address.partition("@")
    return (local[:1] + "****" if local else "****") + ("@" + domain if domain else "")


def mask_name(name: str) -> str:
    if not name:
        return name
    if len(name) == 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)
