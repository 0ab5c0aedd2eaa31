"""Valid test identity numbers (GB 11643 resident IDs, GB 32100 USCC codes)."""

from __future__ import annotations

from yuyue.kit.idnumbers import gb11643_check_char, uscc_check_char


def resident_id(n: int, birth: str = "19800101", area: str = "440106") -> str:
    first17 = f"{area}{birth}{n % 1000:03d}"
    return first17 + gb11643_check_char(first17)


def uscc(n: int) -> str:
    first17 = f"91440101MA{n:07d}"
    return first17 + uscc_check_char(first17)
