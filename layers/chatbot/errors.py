"""Every condition the project names, in one place.

Three families:
- `ChatbotError`: what a request can meet. `ERRORS` is the one table from wire code to condition, and
  each condition carries its HTTP status (before a stream) and its SSE `error` code (inside one).
- `AppDataError`: an action on the application data refused or failed (a guard rail, a missing member).
  These never reach HTTP: the tools turn them into `is_error` results the model can explain.
- `ConfigurationError`: the app cannot start as configured (docs/ARCHITECTURE.md, "Start-up checks").
"""

from __future__ import annotations

from typing import Any, ClassVar


class ChatbotError(Exception):
    """Base of every condition the API reports. `code` is the wire name, `status` the HTTP status."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Something went wrong on our side."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The JSON error body: `{"error", "message", ...}`."""
        return {"error": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers for this error."""
        return {}

    def event_data(self) -> dict[str, Any]:
        """The SSE `error` event's data: `{"code", "message"}`."""
        return {"code": self.code, "message": self.message}


class InvalidRequest(ChatbotError):
    code = "invalid_request"
    status = 400
    default_message = "The request is not valid."


class Unauthorized(ChatbotError):
    code = "unauthorized"
    status = 401
    default_message = "A valid bearer token is required."

    def __init__(self, message: str | None = None, *, challenge: str = "Bearer") -> None:
        super().__init__(message)
        self.challenge = challenge

    def headers(self) -> dict[str, str]:
        # RFC 6750: a 401 names the scheme it wants; the MCP endpoint adds where to find the sign-in.
        return {"WWW-Authenticate": self.challenge}


class RateLimited(ChatbotError):
    code = "rate_limited"
    status = 429

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit, self.retry_after = limit, retry_after
        super().__init__(f"Too many tool calls: at most {limit} a minute; retry in {retry_after} s.")

    def body(self) -> dict[str, Any]:
        return {**super().body(), "limit": self.limit, "retry_after": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Forbidden(ChatbotError):
    code = "forbidden"
    status = 403
    default_message = "You are not allowed to use the assistant here."


class NotFound(ChatbotError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class MethodNotAllowed(ChatbotError):
    code = "method_not_allowed"
    status = 405
    default_message = "Method not allowed."


class ConcurrentRequest(ChatbotError):
    code = "concurrent_request"
    status = 409
    default_message = "You already have a request in progress; wait for it to finish or cancel it."


class PayloadTooLarge(ChatbotError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is larger than 64 KiB."


class RequestTooLarge(ChatbotError):
    """Even trimmed to its minimum (system prompt, tools, the new message), the request's estimated input and a
    useful answer exceed a tier's whole daily limit: no wait would let it through, so it is not a 429."""

    code = "request_too_large"
    status = 400

    def __init__(self, tier: str, limit: int, estimated: int) -> None:
        self.tier, self.limit, self.estimated = tier, limit, estimated
        super().__init__(
            f"This message is too long for the daily {tier} limit of {limit:,} tokens: with the assistant's "
            f"instructions and tools it needs about {estimated:,}. Shorten it or split it up."
        )

    def body(self) -> dict[str, Any]:
        return {**super().body(), "tier": self.tier, "limit": self.limit, "estimated": self.estimated}


class LimitExceeded(ChatbotError):
    code = "limit_exceeded"
    status = 429

    def __init__(self, tier: str, limit: int, used: int, resets_at: str, retry_after: int) -> None:
        self.tier, self.limit, self.used = tier, limit, used
        self.resets_at, self.retry_after = resets_at, retry_after
        super().__init__(f"The daily {tier} token limit ({limit:,}) is reached; it resets at {resets_at}.")

    def body(self) -> dict[str, Any]:
        return {
            **super().body(),
            "tier": self.tier,
            "limit": self.limit,
            "used": self.used,
            "resets_at": self.resets_at,
        }

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ChatbotDisabled(ChatbotError):
    code = "chatbot_disabled"
    status = 503
    default_message = "The assistant is turned off: no Anthropic API key is configured."


class Unavailable(ChatbotError):
    code = "unavailable"
    status = 503
    default_message = "A backing service is unreachable; please try again shortly."


# The codes below only occur inside a stream (as `error` events); their status is what they would be
# were they reported before the stream started.
class UpstreamError(ChatbotError):
    code = "upstream_error"
    status = 502
    default_message = "The model service returned an error."


class UpstreamOverloaded(ChatbotError):
    code = "upstream_overloaded"
    status = 503
    default_message = "The model service is overloaded; please try again shortly."


class Timeout(ChatbotError):
    code = "timeout"
    status = 504
    default_message = "The request took too long and was stopped."


class InternalError(ChatbotError):
    code = "internal_error"
    status = 500


ERRORS: dict[str, type[ChatbotError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        ConcurrentRequest,
        PayloadTooLarge,
        RequestTooLarge,
        LimitExceeded,
        RateLimited,
        ChatbotDisabled,
        Unavailable,
        UpstreamError,
        UpstreamOverloaded,
        Timeout,
        InternalError,
    )
}
"""The table of every wire code and its condition (and so its HTTP status)."""


def for_status(status: int, message: str) -> ChatbotError:
    """The condition of an HTTP status the routing layer produced itself (404 unknown path, 405 method)."""
    condition = next((cls for cls in ERRORS.values() if cls.status == status), InvalidRequest)
    return condition(message)


class AppDataError(Exception):
    """A refused or failed application-data operation; the message is fit to show the user."""


class RecordNotFound(AppDataError):
    """The organization, member or invitation does not exist (in the caller's organization)."""


class InvalidInput(AppDataError):
    """An argument is malformed: a bad email address, an unknown role, neither or both identifiers."""


class GuardRailViolation(AppDataError):
    """The change is refused by a rule: self-change, last owner/admin, role above one's own, duplicates."""


class PermissionDenied(AppDataError):
    """The acting user's current role does not allow the change (or they are no longer a member)."""


class Conflict(AppDataError):
    """The organization kept changing concurrently and the change could not be applied; try again."""


class ConfigurationError(RuntimeError):
    """The app cannot start as configured; the message names the variables to fix."""


class SecretUnavailable(ConfigurationError):
    """A configured secret cannot be read or has no plain-text value: the start-up must fail, not run
    half-configured."""
