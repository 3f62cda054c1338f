"""Errors a user can act on.

Every error that reaches the CLI or the API is a :class:`MediameshError` with a stable ``code`` (used in
the API's error body) and a one-line message. Anything else is a bug.
"""

from __future__ import annotations


class MediameshError(Exception):
    """Base of all errors that are reported to the user, never as a traceback."""

    code = "error"
    #: HTTP status the API answers with; the CLI maps it to an exit code.
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(MediameshError):
    code = "invalid_input"
    status = 422


class Forbidden(MediameshError):
    """Allowed to the caller's scope in general, but not this (a folder outside the allowed roots)."""

    code = "forbidden"
    status = 403


class NotFound(MediameshError):
    code = "not_found"
    status = 404


class Conflict(MediameshError):
    code = "conflict"
    status = 409


class SourceUnavailable(MediameshError):
    """The source cannot be reached or does not look like the one registered."""

    code = "source_unavailable"
    status = 503


class LocationUnreachable(SourceUnavailable):
    """A location given to register or change a source cannot be reached: the request is refused (4xx),
    because it names something that is not there; nothing about the server is unavailable."""

    code = "location_unreachable"
    status = 422


class TooBusy(MediameshError):
    """The server serves as many of these at once as it will (event streams): try again later."""

    code = "too_busy"
    status = 503


class ConfigurationError(MediameshError):
    code = "configuration_error"
    status = 500


def from_code(code: str, message: str) -> MediameshError:
    """The error of this ``code`` again (an error a job recorded, raised to whoever waits for it)."""
    pending: list[type[MediameshError]] = [MediameshError]
    while pending:
        cls = pending.pop()
        if cls.code == code:
            return cls(message)
        pending.extend(cls.__subclasses__())
    return MediameshError(message)
