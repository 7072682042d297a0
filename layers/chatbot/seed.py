"""Local mode: create the two tables where missing and load the demo data (README, "Demo data"), idempotently."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from .appdata import Invitation, Member, invitation_item, member_item, org_item
from .permissions import Role

logger = logging.getLogger(__name__)

DEMO_CREATED_AT = "2025-01-06T09:00:00Z"

DEMO_ORGANIZATIONS: dict[str, str] = {"org_acme": "Acme Inc", "org_globex": "Globex Corporation"}

# (user id, name, email, organization, role, joined): the README's demo table.
_DEMO_PEOPLE: tuple[tuple[str, str, str, str, Role, str], ...] = (
    ("user_alice", "Alice Anders", "alice@acme.test", "org_acme", "admin", DEMO_CREATED_AT),
    ("user_bob", "Bob Brown", "bob@acme.test", "org_acme", "member", "2025-01-07T10:00:00Z"),
    ("user_erin", "Erin Evans", "erin@acme.test", "org_acme", "viewer", "2025-01-08T11:00:00Z"),
    ("user_carol", "Carol Chen", "carol@globex.test", "org_globex", "admin", DEMO_CREATED_AT),
    ("user_dave", "Dave Diaz", "dave@globex.test", "org_globex", "member", "2025-01-07T10:30:00Z"),
)

DEMO_USERS: tuple[dict[str, str], ...] = tuple(
    {
        "user_id": uid,
        "name": name,
        "email": email,
        "org_id": org,
        "org_name": DEMO_ORGANIZATIONS[org],
        "role": role,
    }
    for uid, name, email, org, role, _ in _DEMO_PEOPLE
)
"""The demo users as JSON-ready records (the local demo page's user picker)."""

DEMO_MEMBERS: dict[str, tuple[Member, ...]] = {
    org_id: tuple(
        Member(uid, name, email, role, joined)
        for uid, name, email, org, role, joined in _DEMO_PEOPLE
        if org == org_id
    )
    for org_id in DEMO_ORGANIZATIONS
}

DEMO_INVITATIONS: dict[str, tuple[Invitation, ...]] = {
    "org_acme": (
        Invitation(
            "inv_acme_gina", "gina@acme.test", "member", "pending", "user_alice", "2025-01-09T12:00:00Z"
        ),
    ),
}


def _key_schema() -> dict[str, Any]:
    return {
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _create_table(client: Any, name: str) -> bool:
    """Create `name` with the `pk`/`sk` schema; False when it already exists."""
    try:
        client.create_table(TableName=name, **_key_schema())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceInUseException":
            return False
        raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return True


def create_tables(client: Any, app_table: str, usage_table: str) -> None:
    """Create the application-data and usage tables where missing (usage items expire via TTL `expires_at`)."""
    if _create_table(client, app_table):
        logger.info("created table %s", app_table)
    created_usage = _create_table(client, usage_table)
    ttl = client.describe_time_to_live(TableName=usage_table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=usage_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    if created_usage:
        logger.info("created table %s", usage_table)


def _put_if_absent(client: Any, table: str, item: dict[str, Any]) -> bool:
    try:
        client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def seed_demo_data(client: Any, app_table: str) -> int:
    """Write the demo organizations, members and invitation where absent; returns how many items were written.

    Items that already exist are left as they are, so restarting against a persistent local DynamoDB keeps
    the changes made through the assistant.
    """
    written = 0
    for org_id, name in DEMO_ORGANIZATIONS.items():
        written += _put_if_absent(client, app_table, org_item(org_id, name, DEMO_CREATED_AT))
        for member in DEMO_MEMBERS.get(org_id, ()):
            written += _put_if_absent(client, app_table, member_item(org_id, member))
        for invitation in DEMO_INVITATIONS.get(org_id, ()):
            written += _put_if_absent(client, app_table, invitation_item(org_id, invitation))
    if written:
        logger.info("seeded %d demo items into %s", written, app_table)
    return written
