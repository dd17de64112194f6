"""jira_double: a double of a Jira-like REST API, with the OpenAPI schema an AIApp points at.

It stands at the edge we do not own (Jira Cloud's REST API) and serves, over HTTP on 127.0.0.1,
``GET /rest/api/3/issue/{issueIdOrKey}`` and ``GET /rest/api/3/search?jql=...`` with Jira's
response and error shapes. Both need ``Authorization: Bearer <token>``; without it the double
answers 401 as Jira does. Every request is recorded with its headers and query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

JIRA_OPENAPI = """\
openapi: 3.0.1
info:
  title: Jira issues (trimmed)
  version: 1.0.0
servers:
  - url: https://your-domain.atlassian.net
paths:
  /rest/api/3/issue/{issueIdOrKey}:
    get:
      operationId: getIssue
      summary: Returns the details of one issue, including its description.
      parameters:
        - name: issueIdOrKey
          in: path
          required: true
          description: The issue key, like PROJ-1.
          schema:
            type: string
        - name: fields
          in: query
          schema:
            type: string
      responses:
        "200":
          description: The issue.
          content:
            application/json:
              schema:
                $ref: "#/components/schemas/Issue"
  /rest/api/3/search:
    get:
      operationId: searchForIssuesUsingJql
      summary: Searches for issues using JQL.
      parameters:
        - name: jql
          in: query
          required: true
          schema:
            type: string
        - name: maxResults
          in: query
          schema:
            type: integer
      responses:
        "200":
          description: Matching issues.
components:
  schemas:
    Issue:
      type: object
      properties:
        key:
          type: string
        fields:
          type: object
"""

DEFAULT_ISSUES: dict[str, dict[str, Any]] = {
    "PROJ-1": {
        "summary": "Login button does nothing on Safari",
        "description": "In src/login.js the click handler uses event.path, which Safari lacks; "
        "use event.composedPath() instead.",
        "status": {"name": "To Do"},
    },
}


@dataclass
class JiraDouble:
    token: str
    issues: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_ISSUES))
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/rest/api/3/issue/{key}", self._issue, methods=["GET"]),
                Route("/rest/api/3/search", self._search, methods=["GET"]),
            ]
        )

    def _record(self, request: Request) -> Response | None:
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
            }
        )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"errorMessages": ["You are not authenticated."], "errors": {}}, status_code=401
            )
        return None

    async def _issue(self, request: Request) -> Response:
        refused = self._record(request)
        if refused is not None:
            return refused
        key = request.path_params["key"]
        if key not in self.issues:
            return JSONResponse(
                {
                    "errorMessages": [
                        "Issue does not exist or you do not have permission to see it."
                    ],
                    "errors": {},
                },
                status_code=404,
            )
        return JSONResponse({"key": key, "fields": self.issues[key]})

    async def _search(self, request: Request) -> Response:
        refused = self._record(request)
        if refused is not None:
            return refused
        jql = request.query_params.get("jql", "")
        found = [
            {"key": key, "fields": fields}
            for key, fields in self.issues.items()
            if key in jql or jql.strip() == ""
        ]
        return JSONResponse({"total": len(found), "issues": found})


def jira_app_spec(jira_url: str, **api_overrides: Any) -> dict[str, Any]:
    """The seed example: an app that reads Jira tickets and proposes code changes."""
    api: dict[str, Any] = {
        "name": "jira",
        "description": "Reads Jira tickets by key.",
        "url": jira_url,
        "schema": JIRA_OPENAPI,
        "headers": {"Authorization": "Bearer ${JIRA_TOKEN}"},
    }
    api.update(api_overrides)
    return {
        "name": "jira-helper",
        "secrets": [{"name": "JIRA_TOKEN", "secret_name": "jira", "key": "token"}],
        "assistants": [
            {
                "name": "coder",
                "model": "llama3.1:8b-instruct-q8_0",
                "system_prompt": "You turn Jira tickets into concrete code changes.",
                "apis": [api],
            }
        ],
    }
