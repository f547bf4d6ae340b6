"""The city's subjects: one token per part, whatever a compound names its devices."""

from __future__ import annotations

import pytest

from gateway.core.city import CitySubject, token, untoken


@pytest.mark.parametrize("text", ["e1", "smoke-3_b", "a.b", "楼3 单元1", "x>y*z", "%41", ""])
def test_a_token_reads_back_as_written(text: str) -> None:
    made = token(text)
    assert all((c.isalnum() and c.isascii()) or c in "_-%" for c in made), made
    assert untoken(made) == text


def test_a_subject_names_the_compound_device_and_type() -> None:
    subject = CitySubject("north", "c1", "elder_button", "e.7", "press")
    assert str(subject) == "sc.north.c1.elder_button.e%2E7.press"
    assert CitySubject.parse(str(subject)) == subject


@pytest.mark.parametrize("subject", ["sc.a.b.c.d", "xx.a.b.c.d.e", "sc.a..c.d.e",
                                     "sc.a.b.c.d.e.f"])
def test_other_subjects_are_not_read(subject: str) -> None:
    assert CitySubject.parse(subject) is None
