"""Masking of personal data in answers: `4401**********123X`, `138****5678`, `张*`."""

from __future__ import annotations


def mask_id(number: str) -> str:
    if len(number) <= 8:
        return number[:1] + "*" * max(len(number) - 2, 1) + number[-1:]
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


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
