"""template.yaml read as data: what it grants, refuses and wires, for given parameter values.

The DynamoDB grants are compared with the code: `services.build_services` names which class gets which
table setting, the template says which table each setting's variable names, and each class's module is
scanned for the boto3 operations it calls on its client (and the item actions inside its transactions).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from tests.deploy.cloudformation import ROOT, Stack, load

PACKAGE = ROOT / "layers" / "chatbot"
TEMPLATE = load()

# IAM has no action for a transaction as a whole: each item in it needs its own action.
TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
TRANSACT_OPERATIONS = {"TransactWriteItems", "TransactGetItems"}
# Modules that call DynamoDB only in local mode (creating and seeding tables on DynamoDB Local or moto),
# never with the deployed function's role.
LOCAL_ONLY = {"local.py", "seed.py"}
# dynamodb.py is the one call helper every store module calls with its own client and table; a helper that
# sends an operation of its own counts as that operation in the module calling it.
CALL_HELPER = "dynamodb.py"
HELPER_OPERATIONS = {"batch_get": "BatchGetItem"}


def _operations() -> dict[str, str]:
    """boto3 method name → DynamoDB operation name (get_item → GetItem), from botocore's own model."""
    model = botocore.session.get_session().get_service_model("dynamodb")
    return {xform_name(name): name for name in model.operation_names}


OPERATIONS = _operations()


@dataclass
class Usage:
    """What one module does with its DynamoDB client."""

    operations: set[str] = field(default_factory=set)
    transact_items: set[str] = field(default_factory=set)
    indexes: set[str] = field(default_factory=set)

    def actions(self) -> set[str]:
        """The IAM actions on the table itself that these calls need."""
        needed = self.operations - TRANSACT_OPERATIONS
        if self.operations & TRANSACT_OPERATIONS:
            needed |= {TRANSACT_ITEM_ACTIONS[item] for item in self.transact_items}
        return needed


def _is_client(node: ast.expr) -> bool:
    # `client.get_item`, `self._client.get_item`, `self.client.get_item`
    if isinstance(node, ast.Name):
        return node.id in {"client", "_client"}
    return isinstance(node, ast.Attribute) and node.attr in {"client", "_client"}


def _constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def usage_of(path: Path) -> Usage:
    """The DynamoDB operations `path` calls on a client, the transaction items it builds, the indexes it names."""
    tree = ast.parse(path.read_text())
    constants = _constants(tree)
    usage = Usage()

    def text(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in OPERATIONS and _is_client(node.value):
            usage.operations.add(OPERATIONS[node.attr])
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in HELPER_OPERATIONS
            and isinstance(node.value, ast.Name)
            and node.value.id == "dynamodb"
        ):
            usage.operations.add(HELPER_OPERATIONS[node.attr])  # dynamodb.batch_get(self._client, ...)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                name = text(key) if key is not None else None
                if name in TRANSACT_ITEM_ACTIONS:
                    usage.transact_items.add(name)
                elif name == "IndexName" and (index := text(value)):
                    usage.indexes.add(index)
        elif isinstance(node, ast.keyword) and node.arg == "IndexName" and (index := text(node.value)):
            usage.indexes.add(index)
        elif (
            isinstance(node, ast.Assign)
            and (index := text(node.value))
            and any(isinstance(t, ast.Subscript) and text(t.slice) == "IndexName" for t in node.targets)
        ):
            usage.indexes.add(index)  # params["IndexName"] = USER_INDEX
    return usage


def table_modules() -> dict[str, Path]:
    """Template table logical id → the module whose class `build_services` gives that table's setting.

    services.py: `QuotaLedger(dynamodb, settings.chatbot_usage_table, ...)`; template.yaml:
    `CHATBOT_USAGE_TABLE: !Ref ChatbotUsageTable`; so quota.py's calls are ChatbotUsageTable's.
    """
    services = ast.parse((PACKAGE / "services.py").read_text())
    class_module = {
        alias.asname or alias.name: PACKAGE / f"{node.module}.py"
        for node in ast.walk(services)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        for alias in node.names
    }
    environment = TEMPLATE["Resources"]["ChatbotFunction"]["Properties"]["Environment"]["Variables"]
    found = {}
    for node in ast.walk(services):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if (
                isinstance(arg, ast.Attribute)
                and isinstance(arg.value, ast.Name)
                and arg.value.id == "settings"
                and arg.attr.endswith("_table")
            ):
                variable = arg.attr.upper()
                assert variable in environment, (
                    f"services.py gives {node.func.id} settings.{arg.attr}, but template.yaml's function "
                    f"sets no {variable}: add `{variable}: !Ref <the table>` to its Environment"
                )
                found[environment[variable]["Ref"]] = class_module[node.func.id]
    return found


@dataclass
class Grants:
    """DynamoDB actions the role allows, per table and per index (logical id, index name)."""

    tables: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    indexes: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))


def dynamodb_grants() -> Grants:
    """Every dynamodb:* action of the function's role, by the table or index it is granted on."""
    grants = Grants()
    for policy in TEMPLATE["Resources"]["ChatbotFunctionRole"]["Properties"]["Policies"]:
        if not isinstance(policy, dict) or "PolicyDocument" not in policy:
            continue
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            dynamo = {a.removeprefix("dynamodb:") for a in actions if a.startswith("dynamodb:")}
            if not dynamo:
                continue
            assert statement["Effect"] == "Allow" and "*" not in "".join(dynamo), statement
            resources = statement["Resource"]
            for resource in resources if isinstance(resources, list) else [resources]:
                if "Fn::GetAtt" in resource:
                    table, attribute = resource["Fn::GetAtt"]
                    assert attribute == "Arn", resource
                    grants.tables[table] |= dynamo
                else:
                    match = re.fullmatch(r"\$\{(\w+)\.Arn\}/index/([\w.-]+)", resource["Fn::Sub"])
                    assert match, f"a DynamoDB resource this test cannot read: {resource}"
                    grants.indexes[(match[1], match[2])] |= dynamo
    return grants


def test_each_table_is_granted_exactly_the_dynamodb_actions_its_code_calls() -> None:
    grants = dynamodb_grants()
    modules = table_modules()
    assert modules, "found no table setting passed to a class in services.build_services"
    problems = []
    for table, module in sorted(modules.items()):
        usage = usage_of(module)
        needed, granted = usage.actions(), grants.tables.get(table, set())
        relative = module.relative_to(ROOT)
        if missing := needed - granted:
            problems.append(
                f"{relative} calls {sorted(missing)} on {table}, which the role does not allow: add "
                f"{', '.join('dynamodb:' + a for a in sorted(missing))} to the statement on "
                f"!GetAtt {table}.Arn in ChatbotFunctionRole's `data` policy (template.yaml)"
            )
        if unused := granted - needed:
            problems.append(
                f"ChatbotFunctionRole allows {sorted(unused)} on {table}, which {relative} never calls: "
                f"remove {', '.join('dynamodb:' + a for a in sorted(unused))} from that statement"
            )
        for index in sorted(usage.indexes):
            if grants.indexes.get((table, index)) != {"Query"}:
                problems.append(
                    f"{relative} queries the index {index} of {table}: grant exactly dynamodb:Query on "
                    f"!Sub ${{{table}.Arn}}/index/{index} (its own statement; found "
                    f"{sorted(grants.indexes.get((table, index), set()))})"
                )
    for table, index in sorted(grants.indexes):
        module = modules.get(table)
        if module is None or index not in usage_of(module).indexes:
            problems.append(
                f"ChatbotFunctionRole grants the index {table}/index/{index}, which no code queries: remove it"
            )
    for table in sorted(set(grants.tables) - set(modules)):
        problems.append(
            f"ChatbotFunctionRole grants {table}, which no class in services.py is given: remove it"
        )
    assert not problems, "\n".join(problems)


def test_only_the_mapped_store_modules_and_local_mode_call_dynamodb() -> None:
    """A new module calling DynamoDB must be wired through services.py (so the test above checks it)."""
    mapped = {path.name for path in table_modules().values()}
    calling = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if usage_of(path).operations and path.name not in LOCAL_ONLY | {CALL_HELPER}
    }
    strays = calling - mapped
    assert not strays, (
        f"{sorted(strays)} call DynamoDB but are not given a table in services.build_services, so the IAM "
        f"check cannot tell which table they use: pass the table through services.py like the others, or "
        f"extend table_modules() in tests/deploy/test_template.py"
    )


def test_the_scan_finds_the_operations_inside_transactions() -> None:
    """Guards the scanner itself: appdata.py writes through transactions with Put, Update and Delete."""
    usage = usage_of(PACKAGE / "appdata.py")
    assert {"TransactWriteItems", "TransactGetItems", "Query", "GetItem"} <= usage.operations
    assert {"Put", "Update", "Delete", "Get"} <= usage.transact_items
    assert usage_of(PACKAGE / "conversations.py").indexes == {"by_owner"}
    assert usage_of(PACKAGE / "audit.py").indexes == {"by_user"}
    assert "BatchGetItem" in usage_of(PACKAGE / "quota.py").operations  # through dynamodb.batch_get
    # An operation the helper sends itself must be mapped to the helper function that sends it.
    assert usage_of(PACKAGE / CALL_HELPER).operations == set(HELPER_OPERATIONS.values())


# Rules: combinations CloudFormation refuses before creating anything.

SUBNETS = {"VpcSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1"}
GROUPS = {"VpcSecurityGroupIds": "sg-0123456789abcdef0"}
JWKS = {
    "AuthJwksUrl": "https://idp.example.com/.well-known/jwks.json",
    "AuthIssuer": "https://idp.example.com/",
    "AuthAudience": "chatbot",
}


@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        (SUBNETS, "VpcSubnetIds needs VpcSecurityGroupIds"),
        (GROUPS, "VpcSecurityGroupIds is used only with VpcSubnetIds"),
        ({**JWKS, "AuthIssuer": ""}, "AuthJwksUrl needs AuthIssuer"),
        ({**JWKS, "AuthAudience": ""}, "AuthJwksUrl needs AuthAudience"),
        ({"EnableSnapStart": "true", "PythonRuntime": "python3.11"}, "SnapStart supports python3.12"),
        ({**SUBNETS, **GROUPS, "CreateVpcEndpoints": "both"}, "CreateVpcEndpoints needs VpcId"),
        (
            {**SUBNETS, **GROUPS, "CreateVpcEndpoints": "dynamodb", "VpcId": "vpc-0123456789abcdef0"},
            "A DynamoDB gateway endpoint needs VpcRouteTableIds",
        ),
        ({"CreateVpcEndpoints": "secretsmanager", "VpcId": "vpc-01234567"}, "set VpcSubnetIds"),
    ],
)
def test_an_incomplete_combination_of_parameters_is_refused(parameters: dict[str, str], refusal: str) -> None:
    broken = Stack(TEMPLATE, parameters).broken_rules()
    assert any(refusal in text for text in broken), broken


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {**SUBNETS, **GROUPS},
        JWKS,
        {"EnableSnapStart": "true"},
        {"EnableSnapStart": "true", "PythonRuntime": "python3.12"},
        {
            **SUBNETS,
            **GROUPS,
            "CreateVpcEndpoints": "both",
            "VpcId": "vpc-0123456789abcdef0",
            "VpcRouteTableIds": "rtb-0123456789abcdef0",
        },
    ],
)
def test_complete_combinations_of_parameters_pass_the_rules(parameters: dict[str, str]) -> None:
    assert Stack(TEMPLATE, parameters).broken_rules() == []


# The function and its role, evaluated.


def _function(parameters: dict[str, str] | None = None, **where: str) -> dict[str, Any]:
    properties = Stack(TEMPLATE, parameters or {}, **where).resource("ChatbotFunction")
    assert properties is not None
    return properties


def test_no_concurrency_is_reserved_unless_reserved_concurrency_is_given() -> None:
    assert "ReservedConcurrentExecutions" not in _function()
    assert _function({"ReservedConcurrency": "50"})["ReservedConcurrentExecutions"] == "50"


def test_the_function_is_told_its_own_timeout() -> None:
    variables = _function({"FunctionTimeout": "120"})["Environment"]["Variables"]
    assert variables["CHATBOT_FUNCTION_TIMEOUT_SECONDS"] == "120"


@pytest.mark.parametrize(
    ("region", "partition", "architecture", "arn"),
    [
        (
            "us-east-1",
            "aws",
            "x86_64",
            "arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerX86:30",
        ),
        (
            "eu-west-1",
            "aws",
            "arm64",
            "arn:aws:lambda:eu-west-1:753240598075:layer:LambdaAdapterLayerArm64:30",
        ),
        (
            "cn-north-1",
            "aws-cn",
            "x86_64",
            "arn:aws-cn:lambda:cn-north-1:041581134020:layer:LambdaAdapterLayerX86:30",
        ),
        (
            "cn-northwest-1",
            "aws-cn",
            "x86_64",
            "arn:aws-cn:lambda:cn-northwest-1:069767869989:layer:LambdaAdapterLayerX86:30",
        ),
    ],
)
def test_the_web_adapter_layer_comes_from_the_account_publishing_it_in_that_region(
    region: str, partition: str, architecture: str, arn: str
) -> None:
    layers = _function({"Architecture": architecture}, region=region, partition=partition)["Layers"]
    assert arn in layers, layers


# Lambda Web Adapter v1.1.0 (September 2026, github.com/aws/aws-lambda-web-adapter pull request 871) is
# published as layer version 30, in the commercial and both China regions; it is the first release with
# the SnapStart hooks (pull request 837). Raise both together after reading a newer release's notes.
WEB_ADAPTER_RELEASE, WEB_ADAPTER_LAYER_VERSION = "v1.1.0", 30


def test_the_web_adapter_layer_version_defaults_to_the_release_checked() -> None:
    default = TEMPLATE["Parameters"]["WebAdapterLayerVersion"]["Default"]
    assert default == WEB_ADAPTER_LAYER_VERSION, (
        f"WebAdapterLayerVersion defaults to {default}, but {WEB_ADAPTER_RELEASE} is layer "
        f"{WEB_ADAPTER_LAYER_VERSION}; update WEB_ADAPTER_* here after reading the adapter's release notes"
    )


def test_snapstart_is_off_by_default_and_applies_to_published_versions_behind_the_alias() -> None:
    assert "SnapStart" not in _function()
    function = _function({"EnableSnapStart": "true"})
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    # SAM creates the version, the alias and puts the function URL on the alias.
    assert function["AutoPublishAlias"] == "live"
    assert function["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"


def test_with_snapstart_the_adapter_is_given_the_apps_hook_paths() -> None:
    variables = _function({"EnableSnapStart": "true"})["Environment"]["Variables"]
    assert variables["AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH"] == "/snapstart/before-checkpoint"
    assert variables["AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"] == "/snapstart/after-restore"
    # Without SnapStart the app serves no hook route at all.
    assert not {name for name in _function()["Environment"]["Variables"] if "SNAPSTART" in name}


def _secret_statements(parameters: dict[str, str]) -> list[dict[str, Any]]:
    role = Stack(TEMPLATE, parameters).resource("ChatbotFunctionRole")
    assert role is not None
    [secrets] = [p for p in role["Policies"] if p["PolicyName"] == "secrets"]
    statements: list[dict[str, Any]] = secrets["PolicyDocument"]["Statement"]
    return statements


FULL_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:chatbot/anthropic-AbCdEf"
PARTIAL_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:chatbot/jwt"


def _iam_matches(pattern: str, arn: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\?", ".").replace(r"\*", ".*"), arn) is not None


def test_a_full_or_partial_secret_arn_grants_exactly_that_secret() -> None:
    [statement] = _secret_statements({"AnthropicApiKeySecretArn": FULL_ARN, "AuthJwtSecretArn": PARTIAL_ARN})
    resources = statement["Resource"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert any(_iam_matches(r, FULL_ARN) for r in resources)
    assert any(_iam_matches(r, PARTIAL_ARN + "-XyZ123") for r in resources)
    # Not a secret whose name only starts with the given one.
    assert not any(_iam_matches(r, PARTIAL_ARN + "-admin-XyZ123") for r in resources), resources


def test_a_customer_managed_secrets_key_may_decrypt_only_through_secrets_manager() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert len(_secret_statements({"AnthropicApiKeySecretArn": FULL_ARN})) == 1
    _, decrypt = _secret_statements({"AnthropicApiKeySecretArn": FULL_ARN, "SecretsKmsKeyArn": key})
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == key
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
    }


VPC = {
    **SUBNETS,
    **GROUPS,
    "VpcId": "vpc-0123456789abcdef0",
    "VpcRouteTableIds": "rtb-0123456789abcdef0,rtb-0123456789abcdef1",
}


def test_no_vpc_endpoint_is_created_by_default() -> None:
    stack = Stack(TEMPLATE, VPC)
    for endpoint in (
        "ChatbotDynamoDbEndpoint",
        "ChatbotSecretsEndpoint",
        "ChatbotSecretsEndpointSecurityGroup",
    ):
        assert stack.resource(endpoint) is None


def test_vpc_endpoints_reach_dynamodb_by_route_and_secrets_manager_from_the_functions_group() -> None:
    stack = Stack(TEMPLATE, {**VPC, "CreateVpcEndpoints": "both"}, region="eu-west-1")
    gateway = stack.resource("ChatbotDynamoDbEndpoint")
    assert gateway is not None
    assert gateway["VpcEndpointType"] == "Gateway"
    assert gateway["ServiceName"] == "com.amazonaws.eu-west-1.dynamodb"
    assert gateway["RouteTableIds"] == ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"]
    interface = stack.resource("ChatbotSecretsEndpoint")
    assert interface is not None
    assert interface["ServiceName"] == "com.amazonaws.eu-west-1.secretsmanager"
    assert interface["SubnetIds"] == SUBNETS["VpcSubnetIds"].split(",")
    assert interface["PrivateDnsEnabled"] is True
    group = stack.resource("ChatbotSecretsEndpointSecurityGroup")
    assert group is not None
    [ingress] = group["SecurityGroupIngress"]
    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 443, 443)
    assert ingress["SourceSecurityGroupId"] == "sg-0123456789abcdef0"


def test_one_vpc_endpoint_can_be_created_alone_beside_an_existing_one() -> None:
    stack = Stack(TEMPLATE, {**VPC, "CreateVpcEndpoints": "secretsmanager"})
    assert stack.resource("ChatbotDynamoDbEndpoint") is None
    assert stack.resource("ChatbotSecretsEndpoint") is not None
