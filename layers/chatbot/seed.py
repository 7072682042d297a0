"""Local mode: create the tables where missing and load the demo data (README, "Demo data"), idempotently."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from .appdata import Invitation, Member, invitation_item, member_item, org_item
from .audit import USER_INDEX
from .conversations import OWNER_INDEX
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


def _key_schema(indexes: dict[str, tuple[str, str, str]]) -> dict[str, Any]:
    """`pk`/`sk` strings, plus global secondary indexes `name: (hash attribute, range attribute, its type)`."""
    attributes = {"pk": "S", "sk": "S"}
    secondary = []
    for name, (hash_key, range_key, range_type) in indexes.items():
        attributes.setdefault(hash_key, "S")
        attributes.setdefault(range_key, range_type)
        secondary.append(
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": range_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    schema: dict[str, Any] = {
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attributes.items()],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if secondary:
        schema["GlobalSecondaryIndexes"] = secondary
    return schema


def _create_table(
    client: Any, name: str, indexes: dict[str, tuple[str, str, str]] | None = None, ttl: bool = False
) -> None:
    """Create `name` where missing (waiting until it is active), with its indexes and TTL on `expires_at`."""
    try:
        client.create_table(TableName=name, **_key_schema(indexes or {}))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    else:
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        logger.info("created table %s", name)
    if ttl:
        status = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
            )


def create_tables(
    client: Any,
    app_table: str,
    usage_table: str,
    conversations_table: str = "ChatbotConversations",
    audit_table: str = "ChatbotAudit",
) -> None:
    """Create every table where missing, as the template defines them: the application data, the usage
    counters, the conversations (listed by owner) and the audit trail (filtered by user); all but the
    application data expire their items by TTL on `expires_at`."""
    _create_table(client, app_table)
    _create_table(client, usage_table, ttl=True)
    _create_table(client, conversations_table, {OWNER_INDEX: ("owner", "updated_at", "N")}, ttl=True)
    _create_table(client, audit_table, {USER_INDEX: ("user_key", "sk", "S")}, ttl=True)


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
