"""The access log without secrets: a signed link's signature is a password for as long as it lasts."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_SIGNATURE = re.compile(r"(signature=)[^&\s]*")


def redact(text: str) -> str:
    return _SIGNATURE.sub(r"\1[redacted]", text)


class RedactSignatures(logging.Filter):
    """For uvicorn's access logger, whose record holds (client, method, path with query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging set-up, with the access log redacted."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": RedactSignatures}
    config["handlers"]["access"]["filters"] = ["redact"]
    return config
