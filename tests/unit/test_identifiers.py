"""Station ids and driver tokens as DESIGN "Identifiers and validation" defines them."""

from __future__ import annotations

import string
import uuid
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from apps.access.identifiers import driver_token_check, driver_token_legacy_check, station_id_normalize

UUID_TEXT = "6f1c2a9e-4b7d-4c1a-9e3f-2d8b5a7c0e14"
LEGACY_ID = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"  # 36 alphanumerics, the original service's ids
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-._~*=:+|@"
LEGACY_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-._~"
ALNUM = string.ascii_letters + string.digits


@pytest.mark.parametrize(
    ("given_id", "stored"),
    [
        pytest.param(UUID_TEXT, UUID_TEXT, id="hyphenated_lowercase_uuid_kept"),
        pytest.param(UUID_TEXT.upper(), UUID_TEXT, id="hyphenated_uppercase_uuid_lowercased"),
        pytest.param("6F1C2A9E-4b7d-4C1A-9e3f-2D8B5A7C0E14", UUID_TEXT, id="mixed_case_uuid_lowercased"),
        pytest.param(UUID_TEXT.replace("-", ""), UUID_TEXT, id="32_hex_digits_hyphenated"),
        pytest.param(UUID_TEXT.replace("-", "").upper(), UUID_TEXT, id="32_uppercase_hex_digits_normalized"),
        pytest.param(LEGACY_ID, LEGACY_ID, id="legacy_36_alphanumerics_kept_as_given"),
        pytest.param("0" * 36, "0" * 36, id="legacy_36_digits_kept_as_given"),
        pytest.param("ABCDEF" * 6, "ABCDEF" * 6, id="legacy_36_hex_letters_without_hyphens_not_lowercased"),
    ],
)
def test_station_id_normalize_accepts_uuid_and_legacy_forms(given_id: str, stored: str) -> None:
    assert station_id_normalize(given_id) == stored


@pytest.mark.parametrize(
    "given_id",
    [
        pytest.param("A" * 35, id="35_alphanumerics"),
        pytest.param("A" * 37, id="37_alphanumerics"),
        pytest.param("", id="empty"),
        pytest.param("f" * 31, id="31_hex_digits"),
        pytest.param("f" * 33, id="33_hex_digits"),
        pytest.param("\u0663" * 36, id="36_arabic_indic_digits"),
        pytest.param("\uff10" * 36, id="36_fullwidth_digits"),
        pytest.param("\u00e9" * 36, id="36_non_ascii_letters"),
        pytest.param("{" + UUID_TEXT + "}", id="uuid_in_braces"),
        pytest.param("urn:uuid:" + UUID_TEXT, id="uuid_urn"),
        pytest.param(UUID_TEXT.replace("-", "", 1), id="uuid_missing_one_hyphen"),
        pytest.param("6f1c2a9e4-b7d-4c1a-9e3f-2d8b5a7c0e14", id="uuid_with_hyphen_misplaced"),
        pytest.param("6f1c2a9g-4b7d-4c1a-9e3f-2d8b5a7c0e14", id="hyphenated_with_non_hex_letter"),
        pytest.param(" " + UUID_TEXT, id="uuid_with_leading_space"),
        pytest.param(LEGACY_ID[:18] + "-" + LEGACY_ID[19:], id="legacy_with_hyphen"),
        pytest.param(None, id="none"),
        pytest.param(12345, id="integer"),
        pytest.param(LEGACY_ID.encode(), id="bytes"),
        pytest.param(uuid.UUID(UUID_TEXT), id="uuid_object_not_str"),
    ],
)
def test_station_id_normalize_rejects_other_forms(given_id: Any) -> None:
    with pytest.raises(ValueError, match="station_id must be"):
        station_id_normalize(given_id)


@pytest.mark.parametrize(
    "given_id",
    [
        pytest.param(LEGACY_ID + "\n", id="legacy_id"),
        pytest.param(UUID_TEXT + "\n", id="hyphenated_uuid"),
        pytest.param(UUID_TEXT.replace("-", "") + "\n", id="32_hex_digits"),
    ],
)
def test_station_id_normalize_rejects_trailing_newline_with_the_rule(given_id: str) -> None:
    with pytest.raises(ValueError, match="station_id must be"):
        station_id_normalize(given_id)


@given(st.uuids(version=None))
def test_station_id_every_uuid_spelling_stores_the_same_id(value: uuid.UUID) -> None:
    spellings = [str(value), str(value).upper(), value.hex, value.hex.upper()]

    assert {station_id_normalize(spelling) for spelling in spellings} == {str(value)}


station_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda value: str(value).upper()),
    st.uuids().map(lambda value: value.hex),
    st.text(alphabet=ALNUM, min_size=36, max_size=36),
)


@given(station_ids)
def test_station_id_normalize_is_idempotent(value: str) -> None:
    stored = station_id_normalize(value)

    assert station_id_normalize(stored) == stored


@pytest.mark.parametrize(
    "driver_token",
    [
        pytest.param("A", id="1_character_minimum"),
        pytest.param("04A2B3C4", id="rfid_uid_8_hex_digits"),
        pytest.param("04A2B3C4D5E6F7", id="rfid_uid_14_hex_digits"),
        pytest.param("z" * 80, id="80_characters_maximum"),
        pytest.param("DRIVER-TOKEN-0000001", id="hyphen"),
        pytest.param("DRIVER.TOKEN.0000001", id="dot"),
        pytest.param("DRIVER_TOKEN_0000001", id="underscore"),
        pytest.param("DRIVER~TOKEN~0000001", id="tilde"),
        pytest.param("DE*ABC*C12345678*9", id="emaid_with_stars"),
        pytest.param("fleet=7:card+2|x", id="equals_colon_plus_bar"),
        pytest.param("driver@example.com", id="at_sign"),
        pytest.param("-._~*=:+|@", id="symbols_only"),
        pytest.param("aB3-._~*=:+|@" * 6 + "xy", id="every_kind_of_character_at_80"),
    ],
)
def test_driver_token_check_accepts_the_token_alphabet(driver_token: str) -> None:
    assert driver_token_check(driver_token) == driver_token


@pytest.mark.parametrize(
    "driver_token",
    [
        pytest.param("A" * 81, id="81_characters_too_long"),
        pytest.param("", id="empty"),
        pytest.param("DRIVER TOKEN 0000001", id="space"),
        pytest.param("DRIVER/TOKEN/0000001", id="slash"),
        pytest.param("DRIVER#TOKEN", id="hash"),
        pytest.param("DRIVER%20TOKEN", id="percent"),
        pytest.param("DRIVER?TOKEN", id="question_mark"),
        pytest.param("DRIVER\u00e9TOKEN\u00e90000001", id="unicode_letter"),
        pytest.param(
            "DRIVERTOKEN\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663\u0663", id="unicode_digits"
        ),
        pytest.param("DRIVER\tTOKEN\t0000001", id="tab"),
        pytest.param("\nDRIVERTOKEN00000001", id="leading_newline"),
        pytest.param(None, id="none"),
        pytest.param(12345678901234567890, id="integer"),
        pytest.param(b"DRIVERTOKEN000000001", id="bytes"),
    ],
)
def test_driver_token_check_rejects_everything_else(driver_token: Any) -> None:
    with pytest.raises(ValueError, match="driver_token must be 1 to 80 characters"):
        driver_token_check(driver_token)


@pytest.mark.parametrize(
    "driver_token",
    [
        pytest.param("A" * 20, id="20_characters_minimum"),
        pytest.param("z" * 80, id="80_characters_maximum"),
        pytest.param("aB3-._~" * 11 + "xyz", id="every_kind_of_character_at_80"),
    ],
)
def test_the_original_routes_rule_accepts_what_the_original_service_accepted(driver_token: str) -> None:
    assert driver_token_legacy_check(driver_token) == driver_token


@pytest.mark.parametrize(
    "driver_token",
    [
        pytest.param("A" * 19, id="19_characters_too_short"),
        pytest.param("04A2B3C4", id="rfid_uid_8_hex_digits"),
        pytest.param("A" * 81, id="81_characters_too_long"),
        pytest.param("DRIVER+TOKEN+0000001", id="plus"),
        pytest.param("DRIVER=TOKEN=0000001", id="equals"),
        pytest.param("DRIVER*TOKEN*0000001", id="star"),
        pytest.param("DRIVER:TOKEN:0000001", id="colon"),
        pytest.param("DRIVER|TOKEN|0000001", id="bar"),
        pytest.param("driver@example.com.xx", id="at_sign"),
        pytest.param("A" * 20 + "\n", id="trailing_newline"),
        pytest.param(None, id="none"),
    ],
)
def test_the_original_routes_rule_refuses_what_the_original_service_refused(driver_token: Any) -> None:
    with pytest.raises(ValueError, match="driver_token must be 20 to 80 characters"):
        driver_token_legacy_check(driver_token)


@given(st.text(alphabet=LEGACY_TOKEN_ALPHABET, min_size=20, max_size=80))
def test_every_token_the_original_routes_accept_the_wider_rule_accepts_too(driver_token: str) -> None:
    assert driver_token_legacy_check(driver_token) == driver_token_check(driver_token) == driver_token


@pytest.mark.parametrize(
    "driver_token",
    [
        pytest.param("A" + "\n", id="1_character_plus_newline"),
        pytest.param("A" * 80 + "\n", id="80_characters_plus_newline_is_81"),
    ],
)
def test_driver_token_check_rejects_trailing_newline(driver_token: str) -> None:
    with pytest.raises(ValueError, match="driver_token must be"):
        driver_token_check(driver_token)


@given(st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=80))
def test_any_token_from_the_alphabet_of_1_to_80_characters_is_returned_unchanged(driver_token: str) -> None:
    assert driver_token_check(driver_token) == driver_token


foreign_characters = st.characters().filter(lambda ch: ch not in TOKEN_ALPHABET)


@given(
    before=st.text(alphabet=TOKEN_ALPHABET, max_size=80),
    foreign=foreign_characters,
    after=st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=80),
)
def test_any_token_with_a_foreign_character_before_the_end_is_rejected(
    before: str, foreign: str, after: str
) -> None:
    with pytest.raises(ValueError, match="driver_token must be"):
        driver_token_check(before + foreign + after)


@given(before=st.text(alphabet=TOKEN_ALPHABET, max_size=80), foreign=foreign_characters)
@example(before="A" * 20, foreign="\n")
def test_any_token_ending_in_a_foreign_character_is_rejected(before: str, foreign: str) -> None:
    with pytest.raises(ValueError, match="driver_token must be"):
        driver_token_check(before + foreign)
