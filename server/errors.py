"""Domain errors. Each carries its HTTP status and a stable code; one middleware renders them."""

from __future__ import annotations

from typing import Any


class PodiumError(Exception):
    """A refusal the user should see: `code` is stable for scripts, `message` says what to do."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class BadRequest(PodiumError):
    status = 400
    code = "bad_request"


class Unauthorized(PodiumError):
    status = 401
    code = "unauthorized"


class Forbidden(PodiumError):
    status = 403
    code = "forbidden"


class NotFound(PodiumError):
    status = 404
    code = "not_found"


class Conflict(PodiumError):
    status = 409
    code = "conflict"


class TooLarge(PodiumError):
    status = 413
    code = "too_large"


class Unprocessable(PodiumError):
    status = 422
    code = "unprocessable"


class EventFileError(Exception):
    """The event file is refused. The message names the file, the key and the line when known."""

    def __init__(self, path: str, message: str, *, key: str | None = None, line: int | None = None):
        self.path = path
        self.key = key
        self.line = line
        self.detail = message
        where = path + (f":{line}" if line else "")
        what = f" [{key}]" if key else ""
        super().__init__(f"{where}:{what} {message}")
