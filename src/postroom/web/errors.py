"""The errors services raise for bad input; pages show them by their field, the API as JSON.

One class tree for both faces so a service never knows who called it: a page handler
re-renders its form with ``exc.errors()``; the API middleware answers
``{"error": message, "field": field}`` with ``exc.status``.
"""

from __future__ import annotations


class WebError(Exception):
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def errors(self) -> dict[str, str]:
        """For a form template: the message by its field ("" when it is about the whole form)."""
        return {self.field or "": self.message}

    def body(self) -> dict[str, str | None]:
        return {"error": self.message, "field": self.field}


class Invalid(WebError):
    status = 400


class Unauthenticated(WebError):
    status = 401


class Forbidden(WebError):
    status = 403


class NotFound(WebError):
    status = 404


class Conflict(WebError):
    status = 409


class TooLarge(WebError):
    status = 413
