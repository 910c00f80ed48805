"""Keep the log lines of native libraries (mediapipe's absl, TensorFlow Lite) off stderr.

mediapipe 0.10.21 logs through absl and TensorFlow Lite's own logger, and neither reads
GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL or any other setting Python can reach before import
(measured: with both set to 3, `geneface process -q` still printed six such lines). They
write straight to file descriptor 2, so the only handle is the descriptor: around the calls
that log (opening a graph, its first frames), fd 2 points at a temporary file, and afterwards
everything written there that is not a native log line (our own messages, a progress bar's
refresh from another thread) is written to the real stderr, in order.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

# absl / glog ("W0000 00:00:1796682402.464798    8458 file.cc:114] ..."), absl's notice
# before InitializeLog, TensorFlow Lite's "INFO: Created TensorFlow Lite XNNPACK delegate", and
# Ray's C++ client ("[2026-12-07 23:13:28,221 W 7921 7921] rpc_client.h:153: ...").
NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] "
    rb"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [IWEF] \d+ \d+\] [\w./-]+:\d+: "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|INFO: Created TensorFlow Lite )"
)

# One redirection of fd 2 at a time in this process; re-entrant, because a segmenter's quiet
# stretch (its opening to its first frame) may hold a tracker's inside it on the same thread.
_lock = threading.RLock()


def drop_native_lines(data: bytes) -> bytes:
    """`data` without the lines that are native libraries' log lines."""
    return b"".join(line for line in data.splitlines(keepends=True) if not NATIVE_LOG_LINE.match(line))


@contextmanager
def native_logs_silenced() -> Iterator[None]:
    """Inside the block, native log lines written to fd 2 are dropped; the rest is kept."""
    with _lock:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, ValueError, OSError):
                pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (a daemon with it closed): nothing can reach stderr anyway
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (AttributeError, ValueError, OSError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                kept = drop_native_lines(held.read())
                if kept:
                    os.write(2, kept)
