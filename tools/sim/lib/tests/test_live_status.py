"""`roadpilot sim`'s status line: what it shows, in place on a terminal, sparse in a log."""

import io
import time

from cereal import messaging
from tools.sim.lib.live_status import PLAIN_EVERY_S, LiveStatus, format_status


def test_format_shows_what_came_and_dashes_what_did_not():
    line = format_status(12.34, 180, 25.0, 27.0, "softDisabling", "TAKE CONTROL IMMEDIATELY / Door Open")
    assert line == ("t   12.3/180 s |  90.0 km/h | set  97 km/h | ENGAGED (softDisabling) | "
                    "TAKE CONTROL IMMEDIATELY / Door Open")
    assert format_status(0.0, 60, 0.0, None, None, "") == "t    0.0/60 s |   0.0 km/h | set - km/h | no selfdriveState"
    assert "| not engaged" in format_status(1.0, 60, 1.0, None, "disabled", "")


def test_terminal_redraws_in_place_with_the_newest_messages():
    pm = messaging.PubMaster(["selfdriveState", "carState"])
    out = io.StringIO()
    st = LiveStatus(60, out, tty=True)
    try:
        deadline = time.monotonic() + 5
        while "ENGAGED" not in out.getvalue() and time.monotonic() < deadline:  # until the subscriptions connect
            sd = messaging.new_message("selfdriveState")
            sd.selfdriveState.state, sd.selfdriveState.enabled = "enabled", True
            cs = messaging.new_message("carState")
            cs.carState.cruiseState.enabled, cs.carState.cruiseState.speed = True, 25.0
            pm.send("selfdriveState", sd)
            pm.send("carState", cs)
            time.sleep(0.05)
            st.next_at = None  # show now
            st.update(time.monotonic(), 3.0, 20.0)
    finally:
        st.close()
        pm.close()
    text = out.getvalue()
    assert "t    3.0/60 s |  72.0 km/h | set  90 km/h | ENGAGED\x1b[K" in text
    assert text.startswith("\r") and text.count("\n") == 1 and text.endswith("\n")  # one line, ended on close


def test_a_log_gets_a_plain_line_now_and_then():
    out = io.StringIO()
    st = LiveStatus(60, out, tty=False)
    for k in range(100):
        st.update(1000.0 + k * 0.25, k * 0.25, 10.0)   # 25 s of updates at 4 Hz
    st.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + int(24.75 // PLAIN_EVERY_S) and "\r" not in out.getvalue()
