"""min_rate, the low-speed limit (SPEC section 4): a body that drips is ended
at the end of the first window short of its bytes, whichever side drips,
and chunk framing does not count as body; a download that keeps above the
rate is never cut, however long it runs, nor is one whose client reads in
bursts, nor a request body that waits for its 100 Continue, nor a
response whose body starts after a pause.

Both bodies count while both move: an upload read at full speed under an
early response head is progress. A client that pauses a download holds
the window (its own pause is not the upstream's drip), but an upstream
that never reads an upload is judged, however many interim responses it
drips meanwhile; a client that neither reads its response nor sends more
than a drip of its upload is ended too; an upload that backs up does not
shield a dripping response.

The default route's idle_timeout (5 s) is longer than its min_rate window
(100 B in 500 ms), as with the shipped defaults (60 s and 30 s), so that it
is min_rate that ends a drip and that /connections names as due. Windows are
scaled like every duration; amounts are not. Windows are short, so that the
module is quick: every drip and pause is the fraction of its window that it
would be of a long one, and the default route's window, whose end the drip
tests time, is at least three times the tolerance of a deadline
(max(50 ms, 5 %) plus slack), so that an end at one window is never taken
for an end at the next. Where megabytes must first fill kernel buffers, or
where the kernel acknowledges bytes in bursts of tens of KiB, a window is
sized by those bytes instead: the full route keeps 1 s windows, and the
slow reader of an upload reads 160 KiB in each window."""

import hashlib
import json
import re
import time

from fakeupstream import pattern
from harness import (ADMIN_ON, SCALE, CutoffTestCase, Dribble, admin_get, build_request, merge, ms,
                     shown, tolerance)

WINDOW = ms(500)
MIN_RATE = "100B/%dms" % round(500 * SCALE)
DRIP = 50 * SCALE  # ms between two bytes: 10 bytes per window, a tenth of the rate
# The paced route: 512 KiB per 250 ms window; /paced sends 128 KiB every
# 12 ms, five times that, for PACED_SIZE: 80 sends, almost four windows.
PACED_MIN_RATE = "512KiB/%dms" % round(250 * SCALE)
PACED_WINDOW = ms(250)
PACED_QUERY = "chunk=%d&interval=%d" % (128 * 1024, round(12 * SCALE))
PACED_SIZE = 10 * 1024 * 1024
BIG = 20 * 1024 * 1024
# The bursty route: 100 B per 250 ms window; its client stops reading for
# two and a half windows, well within idle_timeout (5 s).
BURSTY_WINDOW = ms(250)
BURSTY_MIN_RATE = "100B/%dms" % round(250 * SCALE)
# The stalled route: 100 B in 250 ms windows, under the default route's 5 s
# idle_timeout, for bodies that stall while other bytes keep coming.
STALL_WINDOW = ms(250)
STALL_MIN_RATE = "100B/%dms" % round(250 * SCALE)
# The full route: the same in 1 s windows, for a client whose buffers must
# fill before its download stalls. Filling them moves megabytes through
# cutoff, which takes a time of its own, not a fraction of the window: a
# quarter-second window would be over before they were full.
FULL_WINDOW = ms(1000)
FULL_MIN_RATE = "100B/%dms" % round(1000 * SCALE)
UPLOAD = 16 * 1024 * 1024
# A chunk per byte whose extension pads it to 112 bytes: ten of them per
# window is over 1 KiB of framing, and 10 bytes of body.
PAD = 100

TIMEOUTS_RE = re.compile(r'^cutoff_timeouts_total\{timeout="min_rate",route="default"\} (\d+)$',
                         re.M)


class MinRateTest(CutoffTestCase):
    CONFIG = merge(ADMIN_ON, {"defaults": {"idle_timeout": "5s", "min_rate": MIN_RATE}})
    ROUTES = [
        {"name": "unlimited", "match": {"path_prefix": "/unlimited/"}, "min_rate": "off"},
        {"name": "paced", "match": {"path_prefix": "/paced/"}, "min_rate": PACED_MIN_RATE},
        {"name": "bursty", "match": {"path_prefix": "/bursty/"}, "min_rate": BURSTY_MIN_RATE},
        {"name": "stalled", "match": {"path_prefix": "/stalled/"},
         "min_rate": STALL_MIN_RATE},
        {"name": "full", "match": {"path_prefix": "/full/"}, "min_rate": FULL_MIN_RATE},
    ]
    TIME_LIMIT = 10.0

    def min_rate_timeouts(self) -> int:
        m = TIMEOUTS_RE.search(admin_get(self.cutoff, "/metrics").body.decode())
        return int(m.group(1)) if m else 0

    def the_connection(self, phase: str) -> dict:
        found = [c for c in json.loads(admin_get(self.cutoff, "/connections").body)["connections"]
                 if c["phase"] == phase]
        self.assertEqual(len(found), 1, found)
        return found[0]

    def test_dripping_response_is_reset_at_the_window_end(self):
        up = self.upstream()
        before = self.min_rate_timeouts()
        cl = self.client()
        cl.request("GET", self.url(up, "/drip?size=1000&interval=%d" % DRIP))
        r = cl.read_head()
        self.assertEqual(r.status, 200)
        # The window starts with the first body byte, which the upstream sends
        # just after the head: once the client has it, cutoff has started the
        # window (asking earlier races it, and finds idle_timeout due).
        first = cl.read_exactly(1)
        t_first = time.monotonic()

        # /connections tells the truth about what is due: min_rate, at the
        # window's end, although bytes keep coming (every one of which moves
        # idle_timeout on).
        asked = time.monotonic()
        c = self.the_connection("streaming")
        answered = time.monotonic()
        self.assertEqual(c["deadline"], "min_rate", c)
        left = c["deadline_left_ms"] / 1000
        self.assertLessEqual(left, WINDOW - (asked - t_first) + 0.01, c)
        self.assertGreaterEqual(left, WINDOW - (answered - r.t_head) - tolerance(WINDOW), c)

        self.assertEqual(cl.wait_end(WINDOW + 1.0), "rst", "a response cut short must end in RST")
        self.assertElapsed(cl.end_time - r.t_head, WINDOW, "client reset after", early=0.05)
        got = first + bytes(cl.buf)
        self.assertLess(len(got), 100, "the drip was faster than planned")
        self.assertEqual(got, pattern(len(got)))
        rec = self.assertUpstreamEnd(up, "rst")
        self.assertElapsed(rec.end_time - rec.requests[0].t_head, WINDOW, "upstream reset after",
                           early=0.02)
        self.assertOutcome(f":{up.port}/drip", 200, "timeout:min_rate", "default")
        self.assertEqual(self.min_rate_timeouts() - before, 1)

    def test_dripping_request_body_gets_504_naming_min_rate(self):
        up = self.upstream()
        cl = self.client()
        cl.send(build_request("POST", self.url(up, "/hang"), [("Content-Length", "1000")]))
        t0 = time.monotonic()
        with Dribble(cl, pattern(1000), DRIP / 1000):
            r = cl.read_response(timeout=WINDOW + 2.0)
        self.assertGenerated(r, 504, "http_response_timeout")
        # The window starts with the first byte, a drip interval after the head.
        self.assertElapsed(r.t_head - t0, DRIP / 1000 + WINDOW, "504 after")
        self.assertDetails(r, self.hostport(up), shown(500), "default",
                           also=(f"fewer than 100 B in {shown(500)}",
                                 f"min_rate 100B/{shown(500)}"))
        self.assertUpstreamEnd(up, "rst")
        self.assertOutcome(f":{up.port}/hang", 504, "timeout:min_rate", "default")

    def test_paced_download_above_the_rate_passes_whole(self):
        up = self.upstream()
        cl = self.client(timeout=10.0)
        cl.request("GET", self.url(up, "/paced/paced?size=%d&%s" % (PACED_SIZE, PACED_QUERY)))
        r = cl.read_response(timeout=10.0)
        self.assertEqual((r.status, r.complete), (200, True), r)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(),
                         hashlib.sha256(pattern(PACED_SIZE)).hexdigest())
        self.assertGreater(r.t_done - r.t_head, 3 * PACED_WINDOW,
                           "the download spanned too few windows")
        self.assertOutcome(f":{up.port}/paced/paced", 200, "ok", "paced")

    def test_full_speed_download_passes_whole(self):
        up = self.upstream()
        cl = self.client(timeout=10.0)
        cl.request("GET", self.url(up, "/paced/ok?size=%d" % BIG))
        r = cl.read_response(timeout=10.0)
        self.assertEqual((r.status, r.complete), (200, True), r)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(),
                         hashlib.sha256(pattern(BIG)).hexdigest())
        self.assertOutcome(f":{up.port}/paced/ok", 200, "ok", "paced")

    def test_off_lets_the_drip_run_past_a_window(self):
        # 20 bytes: the last comes 19 drips (1.9 windows) after the head.
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/unlimited/drip?size=20&interval=%d" % DRIP))
        r = cl.read_response(timeout=WINDOW + 3.0)
        self.assertEqual((r.status, r.complete, r.body), (200, True, pattern(20)), r)
        self.assertGreater(r.t_done - r.t_head, WINDOW + tolerance(WINDOW),
                           "the drip did not outlast a window")
        self.assertOutcome(f":{up.port}/unlimited/drip", 200, "ok", "unlimited")

    def test_chunk_framing_is_not_progress_in_a_response(self):
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/drip?size=1000&pad=%d&interval=%d" % (PAD, DRIP)))
        r = cl.read_head()
        self.assertEqual((r.status, r.header("Transfer-Encoding")), (200, "chunked"))
        self.assertEqual(cl.wait_end(WINDOW + 1.0), "rst", "a response cut short must end in RST")
        self.assertElapsed(cl.end_time - r.t_head, WINDOW, "client reset after", early=0.05)
        self.assertGreater(len(cl.buf), 100 * 10, "too little framing came to make the point")
        self.assertUpstreamEnd(up, "rst")
        self.assertOutcome(f":{up.port}/drip", 200, "timeout:min_rate", "default")

    def test_chunk_framing_is_not_progress_in_a_request(self):
        up = self.upstream()
        cl = self.client()
        cl.send(build_request("POST", self.url(up, "/hang"), [("Transfer-Encoding", "chunked")]))
        frame = b"1;pad=" + b"p" * PAD + b"\r\nX\r\n"
        t0 = time.monotonic()
        with Dribble(cl, frame * 100, DRIP / 1000, piece=len(frame)):
            r = cl.read_response(timeout=WINDOW + 2.0)
        self.assertGenerated(r, 504, "http_response_timeout")
        # The window starts with the first byte, a drip interval after the head.
        self.assertElapsed(r.t_head - t0, DRIP / 1000 + WINDOW, "504 after")
        self.assertOutcome(f":{up.port}/hang", 504, "timeout:min_rate", "default")

    def test_client_reading_in_bursts_is_not_a_drip(self):
        # The client stops reading for longer than two windows: cutoff stops
        # reading the upstream, whose window must not run meanwhile.
        up = self.upstream()
        cl = self.client(timeout=10.0)
        cl.request("GET", self.url(up, "/bursty/ok?size=%d" % BIG))
        r = cl.read_head()
        self.assertEqual(r.status, 200)
        first = cl.read_exactly(256 * 1024)
        time.sleep(2.5 * BURSTY_WINDOW)  # the client's own pause, not a wait for cutoff
        rest = cl.read_exactly(BIG - len(first))
        self.assertEqual(first + rest, pattern(BIG))
        self.assertOutcome(f":{up.port}/bursty/ok", 200, "ok", "bursty")

    def test_request_body_waiting_for_100_continue_is_not_a_drip(self):
        # The upstream answers 100 Continue after a window and a half; until
        # then no byte can move, which is idle_timeout's (5 s) to judge.
        up = self.upstream()
        body = pattern(300)
        cl = self.client()
        cl.request("POST", self.url(up, "/continue?delay=%d" % round(750 * SCALE)),
                   [("Expect", "100-continue"), ("Content-Length", str(len(body)))])
        interim = cl.read_head(timeout=5.0)
        self.assertEqual(interim.status, 100)
        self.assertGreater(interim.t_head - cl.t_sent, WINDOW, "the 100 came within a window")
        cl.send(body)
        r = cl.read_response(timeout=5.0)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body)["body_len"], len(body))
        self.assertOutcome(f":{up.port}/continue", 200, "ok", "default")

    def test_response_body_after_a_pause_is_not_a_drip(self):
        # The head, then a window and a half of silence (idle_timeout is
        # 5 s), then the whole body: the first window starts with it.
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/paced?size=4096&chunk=4096&delay=%d"
                                   % round(750 * SCALE)))
        r = cl.read_response(timeout=10.0)
        self.assertEqual((r.status, r.complete, r.body), (200, True, pattern(4096)), r)
        self.assertGreater(r.t_done - r.t_head, 1.5 * WINDOW - tolerance(WINDOW))
        self.assertOutcome(f":{up.port}/paced", 200, "ok", "default")

    def send_upload(self, cl, path, length=UPLOAD, give_up=1.0):
        """Sends a POST head, then its body as fast as cutoff takes it, from a
        thread (the context manager), until cutoff has taken nothing for
        `give_up` seconds (scaled); the body's first bytes go with the head."""
        cl.send(build_request("POST", path, [("Content-Length", str(length))]))
        return Dribble(cl, pattern(length), 0, piece=256 * 1024, give_up=give_up)

    def test_unread_upload_with_a_dripping_interim_response_gets_504(self):
        # The upstream never reads the body and sends 102 Processing a byte
        # at a time: those bytes are not the upload's progress. The first
        # window has the upload's first megabytes, the second what the
        # upstream's kernel still took after cutoff began holding bytes
        # back; the third has nothing.
        up = self.upstream()
        cl = self.client()
        t0 = time.monotonic()
        # A 102 every 26 steps of 5 ms: one at least before the 504.
        with self.send_upload(cl, self.url(up, "/stalled/no-read-body?drip=interim&interval=%d"
                                           % round(5 * SCALE))):
            r = cl.read_response(timeout=3 * STALL_WINDOW + 3.0)
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertGreater(len(r.interim), 0, "no 102 reached the client")
        self.assertGreaterEqual(r.t_head - t0, STALL_WINDOW)
        self.assertLessEqual(r.t_head - t0, 3 * STALL_WINDOW + tolerance(3 * STALL_WINDOW))
        self.assertUpstreamEnd(up, "rst")
        self.assertOutcome(f":{up.port}/stalled/", 504, "timeout:min_rate", "stalled")

    def test_upload_under_an_early_response_head_is_progress(self):
        # The upstream answers its head at once, then reads a 1 MiB upload
        # that comes at 64 KiB every 50 ms, over three windows, then ends
        # its body: the upload's bytes carry every window.
        up = self.upstream()
        cl = self.client(timeout=20.0)
        length = 1024 * 1024
        cl.send(build_request("POST", self.url(up, "/stalled/early?size=2"),
                              [("Content-Length", str(length))]))
        with Dribble(cl, pattern(length), 0.05 * SCALE, piece=64 * 1024):
            r = cl.read_response(timeout=20.0)
        self.assertEqual((r.status, r.complete, r.body), (200, True, pattern(2)), r)
        self.assertGreater(r.t_done - r.t_head, 2 * STALL_WINDOW, "the upload was too quick")
        self.assertOutcome(f":{up.port}/stalled/early", 200, "ok", "stalled")

    def test_backed_up_upload_does_not_shield_a_dripping_response(self):
        # The upstream answers at once and drips its body, and never reads
        # the upload, which backs up: the windows still run. The client stops
        # uploading once its buffers are full, long before the first window
        # ends, so that its reader, not its sender, sees the reset.
        up = self.upstream()
        cl = self.client()
        with self.send_upload(cl, self.url(up, "/no-read-body?drip=body&interval=%d" % DRIP),
                              give_up=0.1):
            r = cl.read_head(timeout=5.0)
            self.assertEqual(r.status, 200)
            self.assertEqual(cl.wait_end(2 * WINDOW + 2.0), "rst",
                             "a cut response must end in RST")
        # The first window has the upload's first megabytes; the second only
        # the drip.
        self.assertGreaterEqual(cl.end_time - r.t_head, WINDOW)
        self.assertLessEqual(cl.end_time - r.t_head, 2 * WINDOW + tolerance(2 * WINDOW))
        self.assertUpstreamEnd(up, "rst")
        self.assertOutcome(f":{up.port}/no-read-body", 200, "timeout:min_rate", "default")

    def test_client_that_stops_reading_cannot_live_on_its_dripping_upload(self):
        # The upstream answers at once with a big body; the client never
        # reads it and drips its upload: neither body makes the rate once
        # the client's buffers are full.
        up = self.upstream()
        cl = self.client()
        path = "/full/no-read-body?drip=body&chunk=65536&interval=0&size=%d" % (64 << 20)
        cl.send(build_request("POST", self.url(up, path), [("Content-Length", "100000")]))
        t0 = time.monotonic()
        # A byte every 200 ms: 5 bytes in each of the route's 1 s windows.
        with Dribble(cl, pattern(100000), 4 * DRIP / 1000):
            e = self.cutoff.wait_access(target="/full/no-read-body",
                                        timeout=(4 * FULL_WINDOW + 2.0) / SCALE)
        self.assertLess(time.monotonic() - t0, 4 * FULL_WINDOW + tolerance(FULL_WINDOW))
        self.assertEqual((e["status"], e["outcome"]), ("200", "timeout:min_rate"), e)
        self.assertUpstreamEnd(up, "rst")
        # (How the client saw its reset is not asserted: the dripping thread's
        # send on the same socket may be the call that takes the error.)

    def test_upstream_reading_an_upload_slowly_but_steadily_is_not_a_drip(self):
        # 32 KiB every 50 ms, 160 KiB a window, 1600 times the rate: cutoff
        # reads the client only as fast as its kernel buffers empty towards
        # the upstream, in bursts a window apart or more, so what the upstream
        # acknowledges counts. Those acknowledgements come in bursts too (the
        # upstream's kernel opens its window by tens of KiB at a time), so a
        # window must hold tens of KiB of reading: the amount read per window
        # matters here, not the time.
        up = self.upstream()
        cl = self.client()
        # It closes after four windows: the exchange must live that long.
        path = "/stalled/slow-read?chunk=32768&interval=%d&stop=%d" % (round(50 * SCALE),
                                                                       round(1000 * SCALE))
        with self.send_upload(cl, self.url(up, path), length=64 << 20):
            r = cl.read_response(timeout=4 * STALL_WINDOW + 3.0)
        self.assertGenerated(r, 502, "connection_terminated")
        self.assertGreaterEqual(r.t_head - cl.t_sent, 4 * STALL_WINDOW - 0.05)
        e = self.cutoff.wait_access(target="/stalled/slow-read")
        self.assertEqual(e["outcome"], "error:connection_terminated", e)
