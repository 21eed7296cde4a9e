import io
import json
import logging

from raftkv.fronts.http.access_log import AccessLog
from raftkv.logs import ConsoleFormatter, JsonFormatter


def test_access_lines_are_json_with_every_field():
    out = io.StringIO()
    log = AccessLog("json", out)
    log.request(b"PUT", "/v1/keys/{key...}", 201, 1500, 87, b"a.b:c-1", "::1")
    log.request(b"GET", "", 404, 200, 80, b"x", "127.0.0.1")
    log.flush()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["method"] == "PUT" and first["route"] == "/v1/keys/{key...}"
    assert first["status"] == 201 and first["latencyMs"] == 1.5 and first["bytes"] == 87
    assert first["requestId"] == "a.b:c-1" and first["client"] == "::1"
    assert second["route"] == "" and log.lines_written == 2


def test_console_access_lines_and_app_log_formats():
    out = io.StringIO()
    log = AccessLog("console", out)
    log.request(b"GET", "/health", 200, 50, 10, b"rid-1", "127.0.0.1")
    log.flush()
    assert "GET /health 200 0.05ms 10B rid=rid-1" in out.getvalue()
    record = logging.makeLogRecord({"msg": "recovered", "levelname": "INFO", "name": "raftkv",
                                    "keys": 3})
    assert json.loads(JsonFormatter().format(record))["keys"] == 3
    assert "recovered  keys=3" in ConsoleFormatter().format(record)
