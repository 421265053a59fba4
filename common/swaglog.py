"""Structured logging for every process.

`cloudlog` is a standard `logging.Logger`. Each record goes two ways:
  - stderr, one readable line: `12:03:04.123 WARNING controlsd: message {"key": value}`
  - one JSON object over a ZMQ PUSH socket to logmessaged, which publishes it as `logMessage`
    (so loggerd records it with the route). No collector running → records are dropped there,
    never blocking the process.
Context fields (e.g. the daemon name) are bound once with `cloudlog_bind(name=...)`.
"""

import json
import logging
import os
import sys
import threading

import zmq

from common.paths import run_dir

_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_context: dict = {}


def log_due(count: int, added: int = 1) -> bool:
    """Whether a problem that repeats (a dropped message, a bad frame, a failed write) should be logged now that its
    count grew by `added` to `count`: on the 1st, 2nd, 4th, 8th... occurrence, so it stays visible without
    flooding the log."""
    return count > 0 and (count - added).bit_length() != count.bit_length()


def log_endpoint() -> str:
    return "ipc://" + os.path.join(run_dir(create=True), "logmessage")


def record_fields(record: logging.LogRecord) -> dict:
    """The extra fields a call passed (`extra={...}`), plus the bound context."""
    fields = {k: v for k, v in vars(record).items() if k not in _STD_ATTRS}
    return {**_context, **fields}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "created": record.created,
            "level": record.levelname,
            "levelnum": record.levelno,
            "name": _context.get("name", record.name),
            "pid": record.process,
            "msg": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=repr)


class ReadableFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = self.formatTime(record, "%H:%M:%S") + f".{int(record.msecs):03d}"
        line = f"{t} {record.levelname} {_context.get('name', record.name)}: {record.getMessage()}"
        fields = {k: v for k, v in record_fields(record).items() if k != "name"}
        if fields:
            line += " " + json.dumps(fields, default=repr)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class ZmqPushHandler(logging.Handler):
    """Sends JSON records to logmessaged. One socket per process (re-made after a fork)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(JsonFormatter())
        self._pid = -1
        self._sock = None
        self._lock = threading.Lock()

    def _socket(self):
        if self._pid != os.getpid():
            sock = zmq.Context.instance().socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 1000)
            sock.connect(log_endpoint())
            self._sock, self._pid = sock, os.getpid()
        return self._sock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record).encode()
            with self._lock:
                self._socket().send(msg, zmq.NOBLOCK)
        except zmq.Again:
            pass  # collector not keeping up or not running: drop, never block a daemon
        except Exception:
            self.handleError(record)


def cloudlog_bind(**fields) -> None:
    """Adds context fields (e.g. name="controlsd") to every later record of this process."""
    _context.update(fields)


def _make_logger() -> logging.Logger:
    logger = logging.getLogger("roadpilot")
    logger.setLevel(os.environ.get("ROADPILOT_LOGLEVEL", "INFO").upper())
    logger.propagate = False
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(ReadableFormatter())
    logger.addHandler(stderr)
    logger.addHandler(ZmqPushHandler())
    return logger


cloudlog = _make_logger()
