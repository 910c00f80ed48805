"""A contact sheet of a synthetic clip: frames chosen to show speech and a blink.

    python -m geneface.synth.grid -o docs/img/synth_grid.png          # make a clip, then the grid
    python -m geneface.synth.grid CLIP_DIR -o grid.png --cols 4 --rows 2

The default picture (docs/img/synth_grid.png) is derived from scikit-image's
`astronaut()` photo (NASA, public domain).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from geneface.synth.visemes import VISEMES


def pick_frames(mouth: np.ndarray, blink: np.ndarray, n: int) -> list[int]:
    """`n` frames spread over the clip, swapping in the widest-open mouth and a shut eye."""
    T = len(mouth)
    picks = list(np.linspace(0, T - 1, n + 2)[1:-1].round().astype(int))
    wanted = [int(np.argmax(mouth))]
    if blink.max() > 0.8:
        wanted.append(int(np.argmax(blink)))
    for w in wanted:
        if w not in picks:
            nearest = int(np.argmin([abs(p - w) for p in picks]))
            picks[nearest] = w
    return sorted(set(picks))


def make_grid(frames: np.ndarray, labels: Sequence[str], cols: int, tile: int) -> np.ndarray:
    rows = int(np.ceil(len(frames) / cols))
    sheet = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        img = cv2.resize(frame, (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(img, label, (4, tile - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(img, label, (4, tile - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(i, cols)
        sheet[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = img
    return sheet


def grid_from_clip(clip_dir: Path, cols: int, rows: int, tile: int) -> np.ndarray:
    from geneface.core.media import read_video
    from geneface.synth.clip import GroundTruth

    gt = GroundTruth.load(clip_dir / "ground_truth.npz")
    frames = read_video(clip_dir / "video.mp4")
    return _grid(frames, gt, cols, rows, tile)


def _grid(frames: np.ndarray, gt, cols: int, rows: int, tile: int) -> np.ndarray:
    n = min(len(frames), len(gt.mouth_opening))
    picks = pick_frames(gt.mouth_opening[:n], gt.blink[:n], cols * rows)
    labels = [f"{(k + 0.5) / 25:.2f}s {VISEMES[int(gt.viseme[k])]}" + (" blink" if gt.blink[k] > 0.5 else "") for k in picks]
    return make_grid(frames[picks], labels, cols, tile)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geneface.synth.grid", description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path, help="clip folder from `geneface synth` (default: make one)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--tile", type=int, default=160, help="tile side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip made when none is given")
    args = parser.parse_args(argv)
    if args.clip is not None:
        sheet = grid_from_clip(args.clip, args.cols, args.rows, args.tile)
    else:
        from geneface.synth.clip import ClipSpec, generate

        clip = generate(ClipSpec(seconds=6.0, size=256, seed=args.seed))
        sheet = _grid(clip.frames, clip.ground_truth, args.cols, args.rows, args.tile)
    from geneface.core.atomic import atomic_output

    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.output) as tmp:
        ok, buf = cv2.imencode(".png", sheet[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        tmp.write_bytes(buf.tobytes())
    print(f"{args.output}: {sheet.shape[1]}x{sheet.shape[0]}, {args.output.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
