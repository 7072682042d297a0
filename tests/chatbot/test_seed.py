"""Local-mode tables and demo data: created where missing, seeded exactly as the README's demo table says, idempotently."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chatbot.appdata import AppData
from chatbot.permissions import Caller
from chatbot.seed import DEMO_USERS, create_tables, seed_demo_data
from moto import mock_aws

APP, USAGE, CONVERSATIONS, AUDIT = "AppData", "ChatbotUsage", "ChatbotConversations", "ChatbotAudit"
ALL = sorted([APP, USAGE, CONVERSATIONS, AUDIT])


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


def all_items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = dynamodb.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_create_tables_makes_every_table_with_its_indexes_and_ttl(dynamodb: Any) -> None:
    create_tables(dynamodb, APP, USAGE)
    for name in ALL:
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
            ("pk", "HASH"),
            ("sk", "RANGE"),
        }
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    for name in (USAGE, CONVERSATIONS, AUDIT):
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at"), name
    indexes = {
        name: {
            index["IndexName"]: [k["AttributeName"] for k in index["KeySchema"]]
            for index in dynamodb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
        }
        for name in ALL
    }
    assert indexes[CONVERSATIONS] == {"by_owner": ["owner", "updated_at"]}
    assert indexes[AUDIT] == {"by_user": ["user_key", "sk"]}
    assert indexes[APP] == indexes[USAGE] == {}


def test_create_tables_again_keeps_existing_tables_and_their_items(dynamodb: Any) -> None:
    create_tables(dynamodb, APP, USAGE)
    dynamodb.put_item(TableName=USAGE, Item={"pk": {"S": "global"}, "sk": {"S": "2025-01-01"}})
    create_tables(dynamodb, APP, USAGE)
    assert len(all_items(dynamodb, USAGE)) == 1
    assert sorted(dynamodb.list_tables()["TableNames"]) == ALL


def test_create_tables_creates_only_the_missing_one(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=APP,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    create_tables(dynamodb, APP, USAGE)
    assert sorted(dynamodb.list_tables()["TableNames"]) == ALL


async def test_seed_loads_exactly_the_demo_users_organizations_and_invitation(dynamodb: Any) -> None:
    create_tables(dynamodb, APP, USAGE)
    assert seed_demo_data(dynamodb, APP) == 8
    appdata = AppData(dynamodb, APP)

    expected = {
        ("user_alice", "Alice Anders", "alice@acme.test", "org_acme", "Acme Inc", "admin"),
        ("user_bob", "Bob Brown", "bob@acme.test", "org_acme", "Acme Inc", "member"),
        ("user_erin", "Erin Evans", "erin@acme.test", "org_acme", "Acme Inc", "viewer"),
        ("user_carol", "Carol Chen", "carol@globex.test", "org_globex", "Globex Corporation", "admin"),
        ("user_dave", "Dave Diaz", "dave@globex.test", "org_globex", "Globex Corporation", "member"),
    }
    seen = set()
    for org_id in ("org_acme", "org_globex"):
        for member in await appdata.list_members(org_id):
            found = await appdata.get_caller(org_id, member.user_id)
            assert isinstance(found, Caller)
            seen.add((found.user_id, found.name, found.email, found.org_id, found.org_name, found.role))
    assert seen == expected
    assert {
        tuple(u[k] for k in ("user_id", "name", "email", "org_id", "org_name", "role")) for u in DEMO_USERS
    } == expected

    invitations = await appdata.list_invitations("org_acme")
    assert [(i.email, i.role, i.status) for i in invitations] == [("gina@acme.test", "member", "pending")]
    assert await appdata.list_invitations("org_globex") == []
    assert len(all_items(dynamodb, APP)) == 8  # 2 organizations, 5 members, 1 invitation: nothing else


async def test_seeding_again_writes_nothing_and_keeps_changes_made_since(dynamodb: Any) -> None:
    create_tables(dynamodb, APP, USAGE)
    seed_demo_data(dynamodb, APP)
    appdata = AppData(dynamodb, APP)
    alice = await appdata.get_caller("org_acme", "user_alice")
    assert alice is not None
    await appdata.update_member_role(alice, "viewer", user_id="user_bob")
    before = all_items(dynamodb, APP)

    assert seed_demo_data(dynamodb, APP) == 0
    assert all_items(dynamodb, APP) == before
    assert (await appdata.get_member("org_acme", user_id="user_bob")).role == "viewer"
