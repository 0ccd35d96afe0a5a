"""`ApiError`: a read refused with the answer it must get (status, code, message, field), raised
by the read model (an unknown monitor id or account) and by the dashboard itself. The dashboard
answers it as it is (dashboard/errors.py); the CLI prints its field and message."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered as is: status, code, message, field, extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
