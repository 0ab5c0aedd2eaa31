"""Identity numbers (rules T2/G8 real-name booking, M6 name/ID/gender, M10 company agent by USCC)
and masking of personal data in answers.

The check characters are recomputed here from their definitions (GB 11643: weights 2^(17-i) mod 11;
GB 32100: weights 3^i mod 31 over a 31-character alphabet) rather than copied from the source.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yuyue.kit.idnumbers import (
    gb11643_check_char,
    normalise_id,
    parse_resident_id,
    uscc_check_char,
    valid_uscc,
)
from yuyue.kit.masking import mask_id, mask_name, mask_phone

FAST = settings(max_examples=150, deadline=None)

# --- independent reference implementations -------------------------------------------------------

ID_CHECK_ALPHABET = "0123456789X"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, Z, S, V


def ref_id_check(first17: str) -> str:
    """GB 11643-1999: sum a_i * (2^(17-i) mod 11); check value (12 - sum mod 11) mod 11, 10 = X."""
    total = sum(int(ch) * pow(2, 17 - i, 11) for i, ch in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def ref_uscc_check(first17: str) -> str:
    """GB 32100-2015: sum c_i * (3^i mod 31); check = 31 - sum mod 31, 31 -> 0."""
    total = sum(USCC_ALPHABET.index(ch) * pow(3, i, 31) for i, ch in enumerate(first17))
    return USCC_ALPHABET[(31 - total % 31) % 31]


# --- strategies ---------------------------------------------------------------------------------

areas = st.integers(0, 999_999).map(lambda n: f"{n:06d}")
births = st.dates(date(1900, 1, 1), date(2026, 12, 31))
sequences = st.integers(0, 999).map(lambda n: f"{n:03d}")


@st.composite
def resident_ids(draw: st.DrawFn) -> tuple[str, date, str]:
    area, born, seq = draw(areas), draw(births), draw(sequences)
    first17 = f"{area}{born:%Y%m%d}{seq}"
    return first17 + ref_id_check(first17), born, seq


@st.composite
def resident_ids_ending_in_x(draw: st.DrawFn) -> str:
    area, born, start = draw(areas), draw(births), draw(st.integers(0, 999))
    for step in range(1000):
        first17 = f"{area}{born:%Y%m%d}{(start + step) % 1000:03d}"
        if ref_id_check(first17) == "X":
            return first17 + "X"
    raise AssertionError("unreachable: some sequence number gives X")


@st.composite
def usccs(draw: st.DrawFn) -> str:
    dept = draw(st.sampled_from(USCC_ALPHABET))
    kind = draw(st.sampled_from(USCC_ALPHABET))
    region = f"{draw(st.integers(0, 999_999)):06d}"
    org = "".join(draw(st.lists(st.sampled_from(USCC_ALPHABET), min_size=9, max_size=9)))
    first17 = dept + kind + region + org
    return first17 + ref_uscc_check(first17)


# --- resident ID (GB 11643) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "born", "gender"),
    [
        ("11010519491231002X", date(1949, 12, 31), "F"),  # the standard's own example
        ("440524188001010014", date(1880, 1, 1), None),  # valid check digit but born before 1900
    ],
)
def test_m6_known_resident_ids(number: str, born: date, gender: str | None) -> None:
    parsed = parse_resident_id(number)
    if gender is None:
        assert parsed is None
        return
    assert parsed is not None
    assert (parsed.number, parsed.birth_date, parsed.gender) == (number, born, gender)


@FAST
@given(resident_ids())
def test_m6_random_valid_resident_id_accepted_with_birth_date_and_gender(case: tuple[str, date, str]) -> None:
    number, born, seq = case
    assert gb11643_check_char(number[:17]) == number[17]
    parsed = parse_resident_id(number)
    assert parsed is not None
    assert parsed.number == number
    assert parsed.birth_date == born
    assert parsed.gender == ("M" if int(seq[2]) % 2 else "F")  # 17th digit: odd = male
    assert normalise_id("resident_id", number) == number


@FAST
@given(resident_ids(), st.sampled_from(ID_CHECK_ALPHABET))
def test_t2_changed_check_char_rejected(case: tuple[str, date, str], other: str) -> None:
    number = case[0]
    if other == number[17]:
        other = ID_CHECK_ALPHABET[(ID_CHECK_ALPHABET.index(other) + 1) % len(ID_CHECK_ALPHABET)]
    altered = number[:17] + other
    assert parse_resident_id(altered) is None
    assert parse_resident_id(altered.lower()) is None
    assert normalise_id("resident_id", altered) is None


@FAST
@given(resident_ids(), st.integers(0, 16), st.integers(1, 9))
def test_t2_any_single_digit_change_in_body_rejected(
    case: tuple[str, date, str], pos: int, delta: int
) -> None:
    """GB 11643 detects every single-digit error (11 is prime, no weight is 0 mod 11)."""
    number = case[0]
    digit = str((int(number[pos]) + delta) % 10)
    altered = number[:pos] + digit + number[pos + 1 :]
    assert parse_resident_id(altered) is None


@pytest.mark.parametrize(
    "birth",
    [
        "19990230",
        "19990231",
        "20230229",
        "19000229",
        "19991301",
        "19990001",
        "19990100",
        "19990132",
        "00000101",
    ],
)
def test_m6_impossible_birth_date_rejected_even_with_valid_check_digit(birth: str) -> None:
    first17 = f"440106{birth}123"
    number = first17 + ref_id_check(first17)
    assert parse_resident_id(number) is None
    assert normalise_id("resident_id", number) is None


def test_m6_leap_day_accepted() -> None:
    first17 = "44010620000229123"
    parsed = parse_resident_id(first17 + ref_id_check(first17))
    assert parsed is not None
    assert parsed.birth_date == date(2000, 2, 29)


@FAST
@given(
    resident_ids_ending_in_x(),
    st.sampled_from(["", " ", "\t", "  "]),
)
def test_t2_lowercase_x_and_blanks_normalised(number: str, pad: str) -> None:
    typed = pad + number.lower() + pad
    assert normalise_id("resident_id", typed) == number
    parsed = parse_resident_id(typed)
    assert parsed is not None
    assert parsed.number == number


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "44010619900101123",
        "4401061990010112345",
        "44010619900101123Y",
        "4401061990010112X4",
        "44O106199001011234",
    ],
)
def test_t2_malformed_resident_ids_rejected(bad: str) -> None:
    assert parse_resident_id(bad) is None
    assert normalise_id("resident_id", bad) is None


# --- USCC (GB 32100), rule M10 company agent ----------------------------------------------------


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91350100m000100y43", " 91350100M000100Y43 "])
def test_m10_known_uscc_valid(code: str) -> None:
    assert valid_uscc(code)


@FAST
@given(usccs())
def test_m10_random_valid_uscc_accepted(code: str) -> None:
    assert uscc_check_char(code[:17]) == code[17]
    assert valid_uscc(code)
    assert valid_uscc(code.lower())


@FAST
@given(usccs(), st.sampled_from(USCC_ALPHABET))
def test_m10_uscc_altered_check_char_rejected(code: str, other: str) -> None:
    if other == code[17]:
        other = USCC_ALPHABET[(USCC_ALPHABET.index(other) + 1) % len(USCC_ALPHABET)]
    assert not valid_uscc(code[:17] + other)


@FAST
@given(usccs(), st.integers(0, 17), st.sampled_from("IOZSV"))
def test_m10_uscc_with_excluded_letter_rejected(code: str, pos: int, letter: str) -> None:
    assert not valid_uscc(code[:pos] + letter + code[pos + 1 :])


@pytest.mark.parametrize(
    "code",
    ["", "91350100M000100Y4", "91350100M000100Y433", "913501A0M000100Y43", "91350100M000100Y44"],
)
def test_m10_malformed_uscc_rejected(code: str) -> None:
    assert not valid_uscc(code)


# --- masking (personal data shown to others) ----------------------------------------------------


def test_m6_masking_shapes() -> None:
    assert mask_id("44010619900101123X") == "4401**********123X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("张") == "*"
    assert mask_name("") == ""


@FAST
@given(resident_ids())
def test_m6_mask_id_keeps_four_and_four(case: tuple[str, date, str]) -> None:
    number = case[0]
    masked = mask_id(number)
    assert len(masked) == 18
    assert masked[:4] == number[:4] and masked[-4:] == number[-4:]
    assert masked[4:14] == "*" * 10


@FAST
@given(st.from_regex(r"\A1[3-9][0-9]{9}\Z"))
def test_m6_mask_phone_keeps_three_and_four(phone: str) -> None:
    assert mask_phone(phone) == phone[:3] + "****" + phone[-4:]


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("E12345678", "E1*****78"),  # a passport: two and two, five hidden
        ("H1234567", "H1****67"),
        ("440106900101123", "440*********123"),  # the old 15-digit resident ID
        ("ABC", "***"),
    ],
)
def test_m6_short_document_numbers_show_at_most_half(number: str, masked: str) -> None:
    assert mask_id(number) == masked
    shown = sum(1 for a, b in zip(number, masked, strict=True) if a == b)
    assert shown * 2 <= len(number)
