"""The dashboard and the alarms watch metrics that exist: the app's under the names the code emits (a renamed
metric fails here rather than leaving a dead graph), AWS's of the template's own function and tables."""

from __future__ import annotations

from typing import Any

from tests.deploy.metric_names import (
    SUB_REFERENCE,
    alarm_metrics,
    code_metric_names,
    dashboard_metrics,
    resources_of_type,
    template,
)

LAMBDA_METRICS = {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"}
DYNAMODB_METRICS = {"ReadThrottleEvents", "WriteThrottleEvents"}


def function_environment() -> dict[str, Any]:
    env: dict[str, Any] = template()["Resources"]["ChatbotFunction"]["Properties"]["Environment"]["Variables"]
    return env


def referenced(value: Any) -> str | None:
    """The resource a dimension value names: `${Name}` in a dashboard, `!Ref Name` in an alarm."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    match = SUB_REFERENCE.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def every_metric() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(where, namespace, name, dimensions) of every metric of the dashboard and the alarms."""
    found = [("dashboard", ns, name, dims) for ns, name, dims in dashboard_metrics()]
    for alarm, metrics in alarm_metrics().items():
        found += [(alarm, ns, name, dims) for ns, name, dims in metrics]
    return found


def test_every_app_metric_on_the_dashboard_and_in_the_alarms_is_one_the_code_emits() -> None:
    literal, expanded = code_metric_names()
    namespace = function_environment()["POWERTOOLS_METRICS_NAMESPACE"]
    service = function_environment()["POWERTOOLS_SERVICE_NAME"]
    app_metrics = [
        (where, name, dims) for where, ns, name, dims in every_metric() if not ns.startswith("AWS/")
    ]
    assert app_metrics, "the dashboard shows none of the app's metrics"
    unknown = sorted({(where, name) for where, name, _ in app_metrics if name not in literal | expanded})
    assert unknown == [], f"metrics the code does not emit: {unknown}"
    assert {ns for _, ns, _, _ in every_metric() if not ns.startswith("AWS/")} == {namespace}
    # Powertools adds the service as the one dimension of every metric it emits.
    assert all(dims == {"service": service} for _, _, dims in app_metrics)


def test_every_metric_the_code_names_has_a_graph_on_the_dashboard() -> None:
    literal, _ = code_metric_names()
    shown = {name for _, name, _ in dashboard_metrics()}
    assert sorted(literal - shown) == []


def test_the_aws_metrics_are_real_ones_of_the_templates_own_function_and_tables() -> None:
    tables = set(resources_of_type("AWS::DynamoDB::Table"))
    for where, ns, name, dims in every_metric():
        if ns == "AWS/Lambda":
            assert name in LAMBDA_METRICS, (where, name)
            assert {k: referenced(v) for k, v in dims.items()} == {"FunctionName": "ChatbotFunction"}, where
        elif ns == "AWS/DynamoDB":
            assert name in DYNAMODB_METRICS, (where, name)
            assert set(dims) == {"TableName"} and referenced(dims["TableName"]) in tables, (where, dims)
        else:
            assert not ns.startswith("AWS/"), (where, ns)


def test_dynamodb_throttles_are_graphed_and_alarmed_for_every_table() -> None:
    tables = set(resources_of_type("AWS::DynamoDB::Table"))
    assert len(tables) >= 4
    for where in ("dashboard", "ChatbotDynamoDBThrottlesAlarm"):
        watched = [
            (name, referenced(dims["TableName"]))
            for w, ns, name, dims in every_metric()
            if w == where and ns == "AWS/DynamoDB"
        ]
        assert sorted(watched) == sorted((m, t) for m in DYNAMODB_METRICS for t in tables), where


def test_the_alarms_watch_errors_upstream_throttles_and_the_global_tier_and_notify_the_optional_topic() -> (
    None
):
    alarms = alarm_metrics()
    watched = {name: {(ns, metric) for ns, metric, _ in metrics} for name, metrics in alarms.items()}
    assert watched == {
        "ChatbotErrorsAlarm": {("AWS/Lambda", "Errors"), ("Chatbot", "Error_internal_error")},
        "ChatbotUpstreamErrorsAlarm": {
            ("Chatbot", "Error_upstream_error"),
            ("Chatbot", "Error_upstream_overloaded"),
        },
        "ChatbotLambdaThrottlesAlarm": {("AWS/Lambda", "Throttles")},
        "ChatbotDynamoDBThrottlesAlarm": {("AWS/DynamoDB", m) for m in DYNAMODB_METRICS},
        "ChatbotGlobalTierAlarm": {("Chatbot", "GlobalTierUsedPercent")},
    }
    resources = resources_of_type("AWS::CloudWatch::Alarm")
    tier = resources["ChatbotGlobalTierAlarm"]["Properties"]
    assert (tier["ComparisonOperator"], tier["Threshold"], tier["Statistic"]) == (
        "GreaterThanThreshold",
        80,
        "Maximum",
    )
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, alarm in resources.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == notify and props["OKActions"] == notify, name
        # An expression alarm must return exactly one series: the one it compares.
        if "Metrics" in props:
            returned = [q for q in props["Metrics"] if q.get("ReturnData", True)]
            assert len(returned) == 1 and "Expression" in returned[0], name
            ids = {q["Id"] for q in props["Metrics"] if "MetricStat" in q}
            assert all(i in returned[0]["Expression"] for i in ids), name


def test_tracing_adds_the_collector_layer_and_xray_permission_only_when_on() -> None:
    resources = template()["Resources"]
    function = resources["ChatbotFunction"]["Properties"]
    assert function["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    assert {
        "Fn::If": ["TracingOn", {"Ref": "TracingCollectorLayerArn"}, {"Ref": "AWS::NoValue"}]
    } in function["Layers"]
    assert function_environment()["CHATBOT_TRACING"] == {"Fn::If": ["TracingOn", "true", "false"]}
    [tracing] = [
        p
        for p in resources["ChatbotFunctionRole"]["Properties"]["Policies"]
        if "Fn::If" in p and p["Fn::If"][0] == "TracingOn"
    ]
    statement = tracing["Fn::If"][1]["PolicyDocument"]["Statement"]
    assert statement[0]["Action"] == ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
