"""OpenAI-style error bodies, so clients built for OpenAI read the gateway's failures unchanged.

Every failure the gateway reports, its own or a model server's, leaves as
``{"error": {"message", "type", "param", "code"}}`` with the status an OpenAI client expects.
Messages say what happened and what to do; they never carry secret values.

``SpecError`` is the other kind of failure: a configuration the gateway refuses at start,
before it serves anything, so it has no HTTP form.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class SpecError(ValueError):
    """An app configuration the gateway cannot serve; the message names the field and the fix."""


class GatewayError(Exception):
    """A failure with the status and OpenAI error fields the client should see."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def error_body(
    message: str,
    *,
    type: str,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """The OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, type="invalid_request_error", param=param)
