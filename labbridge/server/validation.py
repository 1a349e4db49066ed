"""Bad input gets a 422 that names the field, whatever the input held.

FastAPI's own answer echoes the rejected input, and a JSON body may carry ``NaN``
or ``Infinity`` (Python's json reads them), which its JSON encoder then refuses:
a jog with ``"feed": NaN`` became a 500. Here the echo is made JSON-safe first.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float written as text ("NaN", "Infinity")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _audit_refusal(request: Request, errors: list[dict[str, Any]]) -> None:
    """A refused command is audited like any other refusal (with its caller, if the token is good)."""
    from labbridge.server.api.deps import bearer_token
    from labbridge.server.auth import AuthError

    ctx = request.app.state.ctx
    try:
        who: Any = ctx.auth.authenticate(bearer_token(request), touch=False)
    except AuthError:
        who = None
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    ctx.audit(who, request.path_params.get("machine"), f"{request.method} {request.url.path}"[:80], "refused",
              f"{where}: {first.get('msg', 'invalid')} (got {first.get('input')!r})"[:300])


def install(app: FastAPI) -> None:
    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = json_safe(jsonable_encoder(exc.errors(), custom_encoder={float: lambda f: json_safe(f)}))
        if request.method != "GET" and request.url.path.startswith("/api/") and request.url.path != "/api/auth/login":
            _audit_refusal(request, errors)
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)
