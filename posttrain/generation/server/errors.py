"""Errors as OpenAI returns them: `{"error": {"message", "type", "param", "code"}}` with 400/404/500.

Every way a request can fail ends here: a body that does not parse or validate (FastAPI's 422 becomes
a 400), an unknown model or route (404), a UserError from the model layer (400), and any other
exception in a handler (500, one line in the server's log). The server keeps serving after each:
nothing here re-raises.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from posttrain.errors import UserError

log = logging.getLogger("posttrain.serve")

_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    499: "invalid_request_error",
    500: "server_error",
    504: "timeout",
}


class APIError(Exception):
    """A refusal with OpenAI's fields; raised by the handlers, answered by install_error_handlers."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {
        "error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"), "param": param, "code": code}
    }


def validation_error(errors: list) -> APIError:
    """The first pydantic error as one line: `field.path: what is wrong` (the body's root dropped)."""
    first: dict[str, Any] = dict(errors[0]) if errors else {"loc": (), "msg": "invalid request body"}
    error = (first.get("ctx") or {}).get("error")
    loc = _field_path(first.get("loc", ()))
    param = getattr(error, "param", None) or (".".join(loc) if loc else None)
    message = str(error) if error is not None and getattr(error, "param", None) else first.get("msg", "invalid")
    if len(loc) < len([p for p in first.get("loc", ()) if p != "body"]):
        message = f"not one of the accepted forms ({message}, ...)"
    if first.get("type") == "json_invalid":
        return APIError(400, "the request body is not valid JSON", None, "invalid_json")
    if first.get("type") == "missing":
        message = "a required field is missing"
    elif first.get("type") == "extra_forbidden":
        message = "unrecognized request argument"
    where = f"{param}: " if param else ""
    return APIError(400, f"{where}{message}", param, str(first.get("type")))


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _field_path(loc) -> list[str]:
    """The field's path without the tags pydantic adds for each form a union tried ('str',
    'list[int]'): `stop.str` names the field `stop`."""
    path = []
    for part in loc:
        text = str(part)
        if part == "body":
            continue
        if text in _TYPE_TAGS or "[" in text:
            break
        path.append(text)
    return path


def install_error_handlers(app) -> None:
    """Map every failure to an OpenAI error object (see the module's docstring)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def answer(err: APIError) -> JSONResponse:
        return JSONResponse(error_body(err.status, err.message, err.param, err.code), status_code=err.status)

    async def on_api_error(request, err: APIError):
        return answer(err)

    async def on_validation(request, err: RequestValidationError):
        return answer(validation_error(list(err.errors())))

    async def on_http(request, err: HTTPException):
        status = err.status_code if err.status_code in _TYPES else 400
        code = "not_found" if status == 404 else None
        return answer(APIError(status, f"{request.method} {request.url.path}: {err.detail}", None, code))

    async def on_user_error(request, err: UserError):
        return answer(APIError(400, str(err)))

    async def on_any(request, err: Exception):  # a backstop: the routes are wrapped by `guarded`
        return answer(internal_error(request.url.path, err))

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(UserError, on_user_error)
    app.add_exception_handler(Exception, on_any)


def internal_error(path: str, err: Exception) -> APIError:
    log.error("500 on %s: %s: %s", path, type(err).__name__, err)
    return APIError(500, f"internal error: {type(err).__name__}: {err}", None, "internal_error")


def guarded(route):
    """A route whose unexpected exceptions become a 500 error object here, in the handler: Starlette's
    last-resort handler would answer too, but then re-raise into the server's log as a traceback."""

    @functools.wraps(route)
    async def wrapper(*args, **kwargs):
        try:
            return await route(*args, **kwargs)
        except (APIError, UserError):
            raise
        except Exception as err:  # noqa: BLE001 -- any failure of one request is that request's 500
            raise internal_error(route.__name__, err) from None

    return wrapper


def parse_json_body(raw: bytes) -> dict:
    """The body as a JSON object, or a 400 (an array, a number or bad bytes are not a request)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", None, "invalid_json")
    return body
