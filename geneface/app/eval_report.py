"""The report of `geneface eval`: its JSON (`evaluation_data`, what `VideoEvaluation.as_dict()`
and `.to_json()` give) and the two-column table the command prints (`format_report`)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import attrs
import numpy as np

if TYPE_CHECKING:
    from geneface.app.eval import VideoEvaluation

FORMAT = "geneface-eval-1"


def evaluation_data(ev: VideoEvaluation) -> dict:
    """Plain JSON-ready data: tuples as lists, NaN or infinite numbers as None."""
    data = _plain(ev)
    if ev.faces is not None:
        data["faces"]["n_missing"] = ev.faces.n_missing
    return {"format": FORMAT, **data}


def evaluation_json(ev: VideoEvaluation) -> str:
    """The JSON text of `evaluation_data`, indented."""
    return json.dumps(evaluation_data(ev), indent=2, allow_nan=False)


def _plain(value):
    """Records as dicts, tuples as lists, numpy scalars as Python ones, NaN as None."""
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _num(value, fmt: str = ".2f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:{fmt}}{unit}"


def _indices(values, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def format_report(ev: VideoEvaluation, curve_span: int = 5) -> str:
    """A plain two-column table of the evaluation (the curve shown within +-`curve_span` frames)."""
    v, a, r = ev.video, ev.audio, ev.run
    rows: list[tuple[str, str]] = [
        ("video", v.path),
        ("frames", f"{v.frames} at 25 fps ({v.duration:.2f} s; container {v.fps:g} fps, {v.codec})"),
        ("size", f"{v.width} x {v.height} px"),
        ("audio track", "yes" if v.has_audio else "no"),
        ("audio", f"{a.path} ({a.seconds:.2f} s = {a.frames} frames)"),
        ("video - audio", f"{a.length_difference_frames:+d} frames"),
        ("run speed", f"{r.fps:.1f} fps" + (f" on {r.device}" if r.device else "") if r.fps else "unknown"),
    ]
    if ev.faces is not None:
        missing = ev.faces.missing
        rows.append(("no face", f"{len(missing)} of {ev.faces.frames} frames"
                     + (f" (frame {_indices(list(missing))})" if missing else "")))
    s = ev.sync
    if s is not None:
        rows += [
            ("sync confidence", f"{s.confidence:.3f} at offset 0 ({s.windows} windows, {s.scorer}, {s.encoder} features)"),
            ("best offset", f"{s.offset:+d} frames (offset confidence {s.offset_confidence:.3f})"),
            ("sync curve", "  ".join(f"{k:+d}:{c:.3f}" for k, c in zip(s.offsets, s.curve) if abs(k) <= curve_span)
             or "-"),
        ]
        if s.frames_left_out:
            rows.append(("sync left out", f"{len(s.frames_left_out)} frames (frame {_indices(list(s.frames_left_out))})"))
    f = ev.reference
    if f is not None:
        rows += [
            ("reference", f"{f.path} ({f.frames} frames compared)"),
            ("PSNR", f"{_num(f.psnr, '.2f', ' dB')} full frame, {_num(f.psnr_face, '.2f', ' dB')} face box"),
            ("SSIM", f"{_num(f.ssim, '.4f')} full frame, {_num(f.ssim_face, '.4f')} face box "
                     f"({f.face_frames} frames with a box)"),
            ("LMD", f"{_num(f.lmd, '.3f', ' px')} ({f.lmd_frames} frames, mouth 48-67 centred, at {f.resolution} px wide)"),
        ]
        if f.reference_missing:
            rows.append(("reference no face", f"{len(f.reference_missing)} frames "
                         f"(frame {_indices(list(f.reference_missing))})"))
    for note in ev.notes:
        rows.append(("note", note))
    if r.note and r.fps is None and r.sidecar:
        rows.append(("note", r.note))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {val}" for k, val in rows)

