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


def install(app: FastAPI) -> None:
    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = json_safe(jsonable_encoder(exc.errors(), custom_encoder={float: lambda f: json_safe(f)}))
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid)
