"""Peak memory of `geneface run` on long audio: the audio encoder over the whole of it.

`run` on two hours of audio peaked at 3.6 GB in its first 30 s (issue 34): the mel encoder
took its STFT over the whole audio at once (a complex spectrogram of 513 x 50 frames a
second). It now goes in 60 s pieces, equal to the whole bit for bit (geneface/plugins/mel.py).
This runs `geneface run` of a spec that stops at the features (mel, `.npz`), the stage that
held the whole audio's spectrogram, under `/usr/bin/time -v` on the subject's speech tiled to
`--minutes`, and prints one JSON line: minutes, peak RSS (MB), wall seconds, and the same for
reading the audio alone (the floor: the interpreter, torch, the registry and the samples).

    python benchmarks/bench_long_audio.py --minutes 30 [--work /tmp/long_audio] [--speech FILE.wav]

Without --speech, `geneface say` speaks a paragraph once and it is tiled.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXT = ("The quick brown fox jumps over the lazy dog while the talking head keeps its mouth in time with "
        "every word it hears, and the long recording goes on and on.")

READ_ONLY = """
import sys
from pathlib import Path
import torch  # what `run` imports too, so the difference is the work
from geneface.core.media import read_audio
from geneface.registry import get_registry
get_registry()
read_audio(Path(sys.argv[1]))
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of `cmd` under GNU time."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return int(peak.group(1)) / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--speech", type=Path, default=None, help="A wav to tile (default: `geneface say`).")
    args = parser.parse_args()

    import numpy as np

    from geneface.core.media import read_audio, write_wav
    from geneface.core.records import Audio

    work = args.work or Path(tempfile.mkdtemp(prefix="long_audio_"))
    work.mkdir(parents=True, exist_ok=True)
    speech = args.speech
    if speech is None:
        speech = work / "say.wav"
        if not speech.exists():
            subprocess.run([sys.executable, "-m", "geneface", "say", TEXT, "-o", str(speech)], check=True,
                           capture_output=True)
    unit = read_audio(speech).samples
    n = int(args.minutes * 60 * 16000)
    long_wav = work / f"long_{args.minutes:g}min.wav"
    write_wav(long_wav, Audio(np.tile(unit, -(-n // len(unit)))[:n]))
    spec = work / "features.yaml"
    spec.write_text(f"input: {{audio: {long_wav.name}}}\nstages: {{audio_encoder: mel}}\noutput: feats.npz\n")

    read_peak, read_wall = timed([sys.executable, "-c", READ_ONLY, str(long_wav)])
    run_peak, run_wall = timed([sys.executable, "-m", "geneface", "run", str(spec), "--overwrite", "-q"])
    print(json.dumps({"minutes": args.minutes, "samples": n, "run_peak_rss_mb": round(run_peak, 1),
                      "run_wall_s": round(run_wall, 1), "read_audio_peak_rss_mb": round(read_peak, 1),
                      "read_audio_wall_s": round(read_wall, 1),
                      "run_over_read_mb": round(run_peak - read_peak, 1)}))


if __name__ == "__main__":
    main()
