"""The audit trail against moto DynamoDB: what a record keeps, newest first, the user filter, paging, the
organization boundary, expiry, and a store that fails never failing the call it records."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from chatbot import paging
from chatbot.audit import RESULT_CHARS, AuditLog
from chatbot.errors import InvalidRequest
from chatbot.observability import RequestMetrics

TABLE = "ChatbotAudit"
T0 = 1_900_000_000.0
RETENTION_DAYS = 365


class Clock:
    """A clock the test moves by hand (epoch seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FailingClient:
    """A DynamoDB client whose every write fails with `error`; it counts the attempts."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.attempts = 0

    def put_item(self, **_: Any) -> Any:
        self.attempts += 1
        raise self.error


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "PutItem")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def audit(dynamodb: Any, clock: Clock) -> AuditLog:
    return AuditLog(dynamodb, TABLE, RETENTION_DAYS, clock=clock)


@pytest.fixture
def metric_events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The one-off metrics emitted during the test (`RequestMetrics.event`)."""
    emitted: list[str] = []
    monkeypatch.setattr(RequestMetrics, "event", classmethod(lambda cls, name: emitted.append(name)))
    return emitted


async def record(audit: AuditLog, clock: Clock, org_id: str = "org_acme", **fields: Any) -> None:
    """One record, a second after the previous one."""
    clock.advance(1)
    values: dict[str, Any] = {
        "user_id": "user_alice",
        "tool": "member_list",
        "input": {},
        "status": "ok",
        "result": '{"count":3}',
    }
    await audit.record(org_id, **{**values, **fields})


async def all_pages(
    audit: AuditLog, org_id: str, *, limit: int, user_id: str | None = None
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        page, cursor = await audit.page(org_id, limit=limit, cursor=cursor, user_id=user_id)
        assert len(page) <= limit
        found += page
        if cursor is None:
            return found
    raise AssertionError("the cursor never ran out")


async def test_a_record_keeps_who_did_what_when_and_how_it_went(audit: AuditLog, clock: Clock) -> None:
    await audit.record(
        "org_acme",
        user_id="user_alice",
        tool="member_remove",
        input={"email": "bob@acme.test"},
        status="declined",
        result="The user declined this action, so it was not carried out.",
        approved=False,
        conversation_id="conv_1",
        request_id="req_1",
    )
    entries, cursor = await audit.page("org_acme", limit=10, cursor=None, user_id=None)
    assert entries == [
        {
            "at": "2030-03-17T17:46:40Z",
            "user_id": "user_alice",
            "conversation_id": "conv_1",
            "request_id": "req_1",
            "tool": "member_remove",
            "input": {"email": "bob@acme.test"},
            "status": "declined",
            "approved": False,
            "via": "chat",
            "result": "The user declined this action, so it was not carried out.",
        }
    ]
    assert cursor is None


async def test_a_call_never_put_to_the_user_is_recorded_without_an_approval(
    audit: AuditLog, clock: Clock
) -> None:
    await record(audit, clock, via="mcp")
    [entry], _ = await audit.page("org_acme", limit=10, cursor=None, user_id=None)
    assert entry["approved"] is None
    assert entry["via"] == "mcp"
    assert entry["conversation_id"] is None and entry["request_id"] is None


async def test_records_come_back_newest_first(audit: AuditLog, clock: Clock) -> None:
    for tool in ("member_list", "member_get", "member_remove"):
        await record(audit, clock, tool=tool)
    entries, _ = await audit.page("org_acme", limit=10, cursor=None, user_id=None)
    assert [e["tool"] for e in entries] == ["member_remove", "member_get", "member_list"]


async def test_records_made_within_one_second_are_still_newest_first(audit: AuditLog, clock: Clock) -> None:
    for i in range(5):
        clock.advance(0.001)
        await audit.record("org_acme", user_id="user_alice", tool=f"t{i}", input={}, status="ok", result="")
    entries, _ = await audit.page("org_acme", limit=10, cursor=None, user_id=None)
    assert [e["tool"] for e in entries] == ["t4", "t3", "t2", "t1", "t0"]


async def test_the_user_filter_returns_only_that_users_records_newest_first(
    audit: AuditLog, clock: Clock
) -> None:
    for user, tool in [("user_alice", "a1"), ("user_bob", "b1"), ("user_alice", "a2"), ("user_erin", "e1")]:
        await record(audit, clock, user_id=user, tool=tool)
    alice, _ = await audit.page("org_acme", limit=10, cursor=None, user_id="user_alice")
    assert [(e["user_id"], e["tool"]) for e in alice] == [("user_alice", "a2"), ("user_alice", "a1")]
    nobody, cursor = await audit.page("org_acme", limit=10, cursor=None, user_id="user_nobody")
    assert (nobody, cursor) == ([], None)


async def test_pages_follow_one_another_with_the_cursor_until_it_runs_out(
    audit: AuditLog, clock: Clock
) -> None:
    for i in range(7):
        await record(audit, clock, tool=f"t{i}")
    first, cursor = await audit.page("org_acme", limit=3, cursor=None, user_id=None)
    assert [e["tool"] for e in first] == ["t6", "t5", "t4"]
    assert cursor is not None
    second, _ = await audit.page("org_acme", limit=3, cursor=cursor, user_id=None)
    assert [e["tool"] for e in second] == ["t3", "t2", "t1"]
    assert [e["tool"] for e in await all_pages(audit, "org_acme", limit=3)] == [
        f"t{i}" for i in range(6, -1, -1)
    ]


async def test_the_user_filter_pages_with_its_cursor_too(audit: AuditLog, clock: Clock) -> None:
    for i in range(5):
        await record(audit, clock, user_id="user_bob", tool=f"b{i}")
        await record(audit, clock, user_id="user_alice", tool=f"a{i}")
    bob = await all_pages(audit, "org_acme", limit=2, user_id="user_bob")
    assert [e["tool"] for e in bob] == ["b4", "b3", "b2", "b1", "b0"]


async def test_a_cursor_of_one_listing_is_refused_by_the_other(audit: AuditLog, clock: Clock) -> None:
    for i in range(3):
        await record(audit, clock, tool=f"t{i}")
    _, everyone = await audit.page("org_acme", limit=1, cursor=None, user_id=None)
    _, alices = await audit.page("org_acme", limit=1, cursor=None, user_id="user_alice")
    assert everyone is not None and alices is not None
    with pytest.raises(InvalidRequest):
        await audit.page("org_acme", limit=1, cursor=everyone, user_id="user_alice")
    with pytest.raises(InvalidRequest):
        await audit.page("org_acme", limit=1, cursor=alices, user_id=None)


@pytest.mark.parametrize(
    "cursor", ["garbage!", paging.encode({"pk": {"S": "org#org_acme"}}), paging.encode({"pk": 1, "sk": 2})]
)
async def test_a_cursor_this_api_did_not_return_is_an_invalid_request(
    audit: AuditLog, clock: Clock, cursor: str
) -> None:
    await record(audit, clock)
    with pytest.raises(InvalidRequest) as refused:
        await audit.page("org_acme", limit=5, cursor=cursor, user_id=None)
    assert refused.value.status == 400


async def test_a_long_result_is_cut_to_its_cap(audit: AuditLog, clock: Clock) -> None:
    await record(audit, clock, result="r" * (RESULT_CHARS * 3), tool="long")
    await record(audit, clock, result="s" * RESULT_CHARS, tool="exact")
    exact, long = (await audit.page("org_acme", limit=5, cursor=None, user_id=None))[0]
    assert long["result"] == "r" * RESULT_CHARS
    assert exact["result"] == "s" * RESULT_CHARS


async def test_a_record_of_another_organization_never_appears(audit: AuditLog, clock: Clock) -> None:
    await record(audit, clock, tool="acme_alice")
    await record(audit, clock, org_id="org_globex", user_id="user_carol", tool="globex_carol")
    # The same user id in another organization is someone else's record there.
    await record(audit, clock, org_id="org_globex", user_id="user_alice", tool="globex_alice")
    acme, _ = await audit.page("org_acme", limit=10, cursor=None, user_id=None)
    assert [e["tool"] for e in acme] == ["acme_alice"]
    alice_in_acme, _ = await audit.page("org_acme", limit=10, cursor=None, user_id="user_alice")
    assert [e["tool"] for e in alice_in_acme] == ["acme_alice"]
    carol_from_acme, _ = await audit.page("org_acme", limit=10, cursor=None, user_id="user_carol")
    assert carol_from_acme == []
    globex, _ = await audit.page("org_globex", limit=10, cursor=None, user_id=None)
    assert [e["tool"] for e in globex] == ["globex_alice", "globex_carol"]


async def test_a_cursor_of_another_organization_is_refused_as_not_ours(audit: AuditLog, clock: Clock) -> None:
    for i in range(3):
        await record(audit, clock, org_id="org_globex", user_id="user_carol", tool=f"g{i}")
    await record(audit, clock, tool="acme")
    _, globex_cursor = await audit.page("org_globex", limit=1, cursor=None, user_id=None)
    assert globex_cursor is not None
    with pytest.raises(InvalidRequest, match="cursor"):
        await audit.page("org_acme", limit=10, cursor=globex_cursor, user_id=None)


async def test_expired_records_are_not_returned(audit: AuditLog, clock: Clock) -> None:
    await record(audit, clock, tool="old")
    clock.advance(200 * 86400)
    await record(audit, clock, tool="recent")
    clock.advance(166 * 86400)
    entries, _ = await audit.page("org_acme", limit=10, cursor=None, user_id=None)
    assert [e["tool"] for e in entries] == ["recent"]


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://dynamodb.invalid"),
        client_error("ResourceNotFoundException"),
        client_error("ConditionalCheckFailedException"),
    ],
    ids=["unreachable", "missing-table", "condition-failed"],
)
async def test_a_record_the_store_cannot_keep_is_logged_and_counted_and_never_raises(
    error: Exception, caplog: pytest.LogCaptureFixture, metric_events: list[str]
) -> None:
    failing = FailingClient(error)
    audit = AuditLog(failing, TABLE, RETENTION_DAYS)
    with caplog.at_level(logging.ERROR, logger="chatbot.audit"):
        await audit.record(
            "org_acme",
            user_id="user_alice",
            tool="member_remove",
            input={"email": "bob@acme.test"},
            status="ok",
            result="removed",
        )
    assert failing.attempts >= 1
    lost = [
        r.getMessage() for r in caplog.records if r.name == "chatbot.audit" and r.levelno == logging.ERROR
    ]
    assert len(lost) == 1
    assert "AUDIT RECORD LOST" in lost[0]
    assert "org_acme" in lost[0] and "member_remove" in lost[0] and "bob@acme.test" in lost[0]
    assert metric_events == ["AuditWriteFailed"]


async def test_a_record_that_is_kept_is_neither_logged_as_lost_nor_counted(
    audit: AuditLog, clock: Clock, caplog: pytest.LogCaptureFixture, metric_events: list[str]
) -> None:
    with caplog.at_level(logging.ERROR, logger="chatbot.audit"):
        await record(audit, clock)
    assert not [r for r in caplog.records if r.name == "chatbot.audit"]
    assert metric_events == []
