"""The HTTP API fuzzed with Hypothesis: any body, content type, method and authorization header gets a
documented answer (never a 500), and no request leaves its user's lock behind."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import LiveServer

DOCUMENTED = {200, 400, 401, 403, 404, 405, 413, 429}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
turns = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", ""]), "content": st.text(max_size=30)}
)
message_bodies = st.fixed_dictionaries(
    {"message": st.one_of(st.text(max_size=200), json_values)},
    optional={"history": st.one_of(st.lists(turns, max_size=6), json_values), "extra": json_values},
)
bodies = st.one_of(
    message_bodies.map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=300),
    st.just(b"x" * (64 * 1024 + 1)),
)


@pytest.mark.parametrize(
    "examples", [pytest.param(150, id="150"), pytest.param(1500, id="1500", marks=pytest.mark.soak)]
)
def test_fuzzed_requests_get_documented_answers_and_leave_no_lock(server: LiveServer, examples: int) -> None:
    valid = server.token("user_alice")
    lock = server.services.lock

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]),
        path=st.sampled_from(
            ["/api/chatbot/message", "/api/chatbot/cancel", "/api/chatbot/usage", "/api/chatbot/status"]
        ),
        body=bodies,
        content_type=st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
        ),
        authorization=st.one_of(
            st.just(f"Bearer {valid}"),
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).filter(
                lambda h: h == h.strip()  # what an HTTP client can send
            ),
            st.just("Bearer " + valid[:-4] + "AAAA"),
        ),
    )
    def check(method: str, path: str, body: bytes, content_type: str, authorization: str) -> None:
        headers = {"authorization": authorization}
        if content_type:
            headers["content-type"] = content_type
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            response = client.request(method, path, content=body, headers=headers)
        assert response.status_code in DOCUMENTED, (response.status_code, response.text)
        if response.status_code != 200:
            assert isinstance(response.json().get("error"), str)
        elif response.headers["content-type"].startswith("text/event-stream"):
            assert response.text.rstrip().split("\n")[-2] in ("event: done", "event: error")
        # Every request has ended: none may still hold the user's lock.
        assert lock._holds == {}, lock._holds

    check()
    # And the user can still chat.
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        ok = client.post(
            "/api/chatbot/message", json={"message": "hi"}, headers={"authorization": f"Bearer {valid}"}
        )
    assert ok.status_code == 200
