"""Native libraries' log lines (mediapipe's absl, TensorFlow Lite) stay off stderr; ours stay."""

from __future__ import annotations

import subprocess
import sys

from geneface.core.native_log import NATIVE_LOG_LINE, drop_native_lines

ABSL = b"W0000 00:00:1796682402.464798    8458 inference_feedback_manager.cc:114] Feedback manager requires ...\n"
TFLITE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"


def test_native_log_lines_are_recognised_and_ours_are_not():
    ours = b"warning: video.mp4: audio-to-video offset unknown\nerror: x.yaml: stages.renderer: unknown\n"
    assert drop_native_lines(ABSL + ours[:40] + b"\n" + TFLITE + NOTICE) == ours[:40] + b"\n"
    assert drop_native_lines(ours) == ours
    assert NATIVE_LOG_LINE.match(b"I1114 09:32:22.280168 13509 tpu_hal.cc:448] Registered")


def test_silenced_block_keeps_python_and_other_native_writes_in_order():
    code = (
        "import os, sys\n"
        "from geneface.core.native_log import native_logs_silenced\n"
        "print('before', file=sys.stderr, flush=True)\n"
        "with native_logs_silenced():\n"
        f"    os.write(2, {ABSL!r})\n"
        "    print('inside', file=sys.stderr)\n"
        f"    os.write(2, {TFLITE!r} + b'native but ours to keep\\n')\n"
        "print('after', file=sys.stderr, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().splitlines() == ["before", "inside", "native but ours to keep", "after"]


def test_process_quiet_prints_only_our_own_lines(tmp_path):
    """`geneface process -q` on a synthetic clip: mediapipe's face mesh and selfie
    segmentation both run, and stderr holds our lines only."""
    geneface = [sys.executable, "-m", "geneface"]
    made = subprocess.run([*geneface, "synth", "-o", str(tmp_path / "clip"), "--seconds", "1", "--size", "128", "-q"],
                          capture_output=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert [line.split(": ")[0] for line in made.stderr.decode().splitlines()] == [str(tmp_path / "clip")]
    done = subprocess.run([*geneface, "process", str(tmp_path / "clip" / "video.mp4"), "-o", str(tmp_path / "ds"),
                           "--size", "64", "--min-face", "20", "-q"], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.decode().splitlines()
    # The clip is 1 s long: the one line is ours, about the audio-to-video offset.
    assert lines and all(line.startswith("warning: video.mp4: ") for line in lines), lines
