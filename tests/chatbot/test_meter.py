"""The meter: one request's reservations, each call charged and settled exactly once, whatever ends it."""

from __future__ import annotations

from typing import Any

import pytest
from chatbot.errors import LimitExceeded, Unavailable
from chatbot.meter import Meter
from chatbot.quota import Reservation
from chatbot.usage import Usage


class Ledger:
    """Records what the meter asks of the ledger; `refuse`/`fail` make the next reserve fail that way."""

    def __init__(self) -> None:
        self.reserved: list[Reservation] = []
        self.settled: list[tuple[Reservation, Usage]] = []
        self.refuse = False
        self.fail = False
        self.fail_settle = False

    async def reserve(
        self,
        user_id: str,
        org_id: str,
        *,
        estimated_input: int,
        max_tokens: int,
        first: bool,
        settle: tuple[Reservation, Usage] | None = None,
        tool_calls: int = 0,
    ) -> Reservation:
        if self.fail:
            raise Unavailable()
        if settle is not None:
            self.settled.append(settle)
        if self.refuse:
            raise LimitExceeded("user", 10, 10, "2025-06-02T00:00:00Z", 60)
        reservation = Reservation(user_id, org_id, "2025-06-01", estimated_input + max_tokens, max_tokens)
        self.reserved.append(reservation)
        return reservation

    async def settle(self, reservation: Reservation, usage: Usage, *, tool_calls: int = 0) -> None:
        if self.fail_settle:
            raise Unavailable()
        self.settled.append((reservation, usage))


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def meter_of(ledger: Ledger) -> Meter:
    meter: Any = Meter(ledger, "user_bob", "org_acme")  # type: ignore[arg-type]
    return meter


async def test_each_call_is_settled_once_by_the_next_reservation_and_the_last_by_close(
    ledger: Ledger,
) -> None:
    meter = meter_of(ledger)
    assert await meter.reserve(1000, 4096) == 4096
    meter.observe(Usage(500, 100), complete=True)
    await meter.reserve(1200, 4096)
    meter.observe(Usage(600, 50), complete=True)
    await meter.close()
    await meter.close()

    assert [usage for _, usage in ledger.settled] == [Usage(500, 100), Usage(600, 50)]
    assert [r for r, _ in ledger.settled] == ledger.reserved
    assert meter.total == Usage(1100, 150)


async def test_a_refused_reservation_leaves_the_previous_call_settled_and_nothing_open(
    ledger: Ledger,
) -> None:
    meter = meter_of(ledger)
    await meter.reserve(1000, 4096)
    meter.observe(Usage(500, 100), complete=True)
    ledger.refuse = True
    with pytest.raises(LimitExceeded):
        await meter.reserve(1000, 4096)
    await meter.close()
    assert [usage for _, usage in ledger.settled] == [Usage(500, 100)]


async def test_a_reservation_that_fails_keeps_the_previous_call_settleable_by_close(ledger: Ledger) -> None:
    meter = meter_of(ledger)
    await meter.reserve(1000, 4096)
    meter.observe(Usage(500, 100), complete=True)
    ledger.fail = True
    with pytest.raises(Unavailable):
        await meter.reserve(1000, 4096)
    await meter.close()
    assert ledger.settled == [(ledger.reserved[0], Usage(500, 100))]


async def test_a_call_cut_short_is_charged_its_input_and_its_streamed_output(ledger: Ledger) -> None:
    meter = meter_of(ledger)
    await meter.reserve(1000, 4096)
    meter.observe(Usage(input_tokens=700, output_tokens=1), complete=False)
    meter.streamed(300)
    charge = meter.unreported()
    assert charge is not None and charge.input_tokens == 700 and charge.output_tokens >= 100
    assert meter.unreported() is None, "reported once"
    await meter.close()
    assert ledger.settled == [(ledger.reserved[0], charge)]


async def test_a_call_cut_short_after_its_request_went_out_is_charged_at_least_its_estimated_input(
    ledger: Ledger,
) -> None:
    meter = meter_of(ledger)
    await meter.reserve(12_000, 4096)
    meter.sending()
    await meter.close()
    assert [usage for _, usage in ledger.settled] == [Usage(input_tokens=12_000)]


async def test_a_call_the_model_service_refused_unread_is_charged_nothing(ledger: Ledger) -> None:
    meter = meter_of(ledger)
    await meter.reserve(12_000, 4096)
    meter.sending()
    meter.sending(False)
    await meter.close()
    assert [usage for _, usage in ledger.settled] == [Usage()]


async def test_output_cut_short_is_charged_a_token_per_streamed_byte_so_emoji_cannot_under_count(
    ledger: Ledger,
) -> None:
    meter = meter_of(ledger)
    await meter.reserve(1000, 4096)
    meter.sending()
    meter.observe(Usage(input_tokens=700, output_tokens=1), complete=False)
    emoji = "\U0001f600" * 50  # 200 bytes; a tokenizer may spend a token on each byte
    meter.streamed(len(emoji.encode()))
    charge = meter.unreported()
    assert charge == Usage(input_tokens=700, output_tokens=200)


async def test_a_completed_call_is_charged_exactly_what_the_api_reported(ledger: Ledger) -> None:
    meter = meter_of(ledger)
    await meter.reserve(1000, 4096)
    meter.streamed(10_000)
    meter.observe(Usage(800, 20, 5, 7), complete=True)
    assert meter.report() == Usage(800, 20, 5, 7)
    assert meter.unreported() is None


async def test_closing_before_any_reservation_settles_nothing(ledger: Ledger) -> None:
    meter = meter_of(ledger)
    await meter.close()
    assert ledger.settled == [] and meter.total == Usage()


async def test_a_settle_the_store_refuses_does_not_raise_and_is_not_tried_twice(ledger: Ledger) -> None:
    meter = meter_of(ledger)
    await meter.reserve(1000, 4096)
    ledger.fail_settle = True
    await meter.close()
    ledger.fail_settle = False
    await meter.close()
    assert ledger.settled == []


async def test_a_closed_meter_reserves_nothing_more(ledger: Ledger) -> None:
    meter = meter_of(ledger)
    await meter.close()
    with pytest.raises(RuntimeError):
        await meter.reserve(1000, 4096)
