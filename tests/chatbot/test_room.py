"""The room calculation: what fits in the three tiers, without any store."""

from __future__ import annotations

from chatbot.room import MIN_USEFUL_OUTPUT, Room

LIMITS = {"user": 50_000, "organization": 1_000_000, "global": 1_000_000}


def room(user: int = 0, organization: int = 0, global_: int = 0) -> Room:
    return Room(LIMITS, {"user": user, "organization": organization, "global": global_})


def test_an_empty_day_fits_the_whole_call() -> None:
    assert Room.empty(LIMITS).output_that_fits(1_000, 4_096) == 4_096


def test_the_output_is_lowered_to_what_the_tightest_tier_has_left() -> None:
    assert room(user=45_000).output_that_fits(1_000, 4_096) == 4_000
    assert room(organization=998_000).output_that_fits(1_000, 4_096) == 1_000


def test_less_than_a_useful_answer_does_not_fit() -> None:
    assert room(user=50_000 - 1_000 - MIN_USEFUL_OUTPUT).output_that_fits(1_000, 4_096) == MIN_USEFUL_OUTPUT
    assert room(user=50_000 - 1_000 - MIN_USEFUL_OUTPUT + 1).output_that_fits(1_000, 4_096) is None


def test_a_call_asking_for_less_than_the_useful_minimum_fits_as_asked() -> None:
    assert room(user=49_000).output_that_fits(900, 100) == 100


def test_an_input_larger_than_a_whole_tier_never_fits() -> None:
    assert Room.empty(LIMITS).output_that_fits(60_000, 4_096) is None


def test_the_tightest_tier_is_the_one_with_least_left_and_ties_name_the_user_first() -> None:
    assert room(user=10, organization=999_990).tightest == "organization"
    assert room(user=950_000 - 900_000, organization=950_000).tightest == "user"
    assert Room.empty({"user": 5, "organization": 5, "global": 5}).tightest == "user"


def test_a_tier_over_its_limit_has_negative_room() -> None:
    over = room(global_=1_000_100)
    assert over.left("global") == -100 and over.tightest == "global"
    assert over.output_that_fits(0, 4_096) is None


def test_a_request_whose_smallest_form_cannot_fit_a_tiers_whole_limit_names_that_tier() -> None:
    room = Room.empty({"user": 6000, "organization": 1_000_000, "global": 1_000_000})
    assert room.too_small_for(5000, 4096) is None
    assert room.too_small_for(5800, 4096) == "user"
    assert (
        Room.empty({"user": 9000, "organization": 100, "global": 50}).too_small_for(10, 4096)
        == "organization"
    )
