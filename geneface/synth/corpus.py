"""A corpus of short synthetic clips with many voices and identities, train/test split.

Test clips use voices and identities that no training clip uses, so a generic model can
be checked on speakers and faces it has never seen. Every clip's parameters follow from
(corpus seed, clip index) alone, so an interrupted run resumes where it stopped and a
finished clip is never made twice.

    OUT_DIR/corpus.json        the plan: corpus settings + one entry per clip
    OUT_DIR/clip00000/ ...     clip folders (see clip.py)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Optional

import attrs
import numpy as np

from geneface.core.atomic import atomic_output
from geneface.errors import UsageError
from geneface.speech import resolve_voice
from geneface.synth.clip import ClipSpec, versions, write_clip
from geneface.synth.text import HARVARD
from geneface.synth.variation import Identity, Style

# English voices and variants: several accents, female and male timbres.
DEFAULT_VOICES = (
    "en-us", "en-us+f3", "en-gb-x-rp+m3", "en-gb+f2", "en-029+m1", "en-gb-scotland+f4",
    "en-us+m7", "en-gb-x-gbcwmd+f5", "en-us-nyc+m2", "en-gb+m4", "en-gb-x-gbclan+f1", "en-us+m6",
)
MANIFEST = "corpus.json"


@attrs.frozen
class CorpusSpec:
    clips: int
    seed: int = 0
    size: int = 256
    voices: tuple = attrs.field(default=DEFAULT_VOICES, converter=tuple)
    identities: int = 8
    test_fraction: float = 0.25
    sentences: int = 1
    identity_strength: float = 1.0
    rate_range: tuple = (135, 185)
    pitch_range: tuple = (35, 70)
    # One speaking style for every clip, and optionally one identity for every clip: a
    # corpus of one "target person" who differs from a generic corpus in a known way.
    style: Style = Style()
    identity_id: Optional[int] = None

    def validate(self) -> "CorpusSpec":
        if self.clips < 1:
            raise UsageError(f"--clips must be at least 1, got {self.clips}")
        if not self.voices:
            raise UsageError("no voices given")
        if self.identities < 1:
            raise UsageError(f"--identities must be at least 1, got {self.identities}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise UsageError(f"--test-fraction must be in [0, 1), got {self.test_fraction}")
        if not 1 <= self.sentences <= 10:
            raise UsageError(f"--sentences must be 1..10, got {self.sentences}")
        if self.identity_id is not None:
            if not 0 <= self.identity_id < self.identities:
                raise UsageError(f"--identity-id must be 0..{self.identities - 1} (one of --identities {self.identities}), got {self.identity_id}")
            if self.test_fraction > 0:
                raise UsageError("--identity-id gives every clip the same identity, so no test split can hold out identities: add --test-fraction 0")
        if self.test_fraction > 0 and (len(self.voices) < 2 or self.identities < 2):
            raise UsageError("a held-out test split needs at least 2 voices and 2 identities (or --test-fraction 0)")
        ClipSpec(size=self.size).validate()
        return self


def _split(items: list, fraction: float, rng: np.random.Generator) -> tuple[list, list]:
    """Disjoint (train, test) parts; test gets about `fraction` of the items, at least one."""
    if fraction <= 0:
        return list(items), []
    order = [items[i] for i in rng.permutation(len(items))]
    n_test = min(len(items) - 1, max(1, int(round(len(items) * fraction))))
    return order[n_test:], order[:n_test]


def plan_corpus(spec: CorpusSpec) -> list[dict]:
    """One entry per clip: id, split, voice, identity, text, seed... (deterministic)."""
    spec.validate()
    voices = [resolve_voice(v) for v in spec.voices]
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 101]))
    train_voices, test_voices = _split(voices, spec.test_fraction, rng)
    train_ids, test_ids = _split(list(range(spec.identities)), spec.test_fraction, rng)
    entries = []
    for i in range(spec.clips):
        crng = np.random.default_rng(np.random.SeedSequence([spec.seed, 202, i]))
        # Evenly spaced test clips (every 4th at 0.25), independent of the clip count, so
        # a corpus can grow with --clips and keep every clip it already has.
        f = spec.test_fraction
        split = "test" if np.floor((i + 1) * f + 1e-9) > np.floor(i * f + 1e-9) else "train"
        voice_pool, id_pool = (test_voices, test_ids) if split == "test" else (train_voices, train_ids)
        identity_id = int(id_pool[int(crng.integers(len(id_pool)))])  # drawn anyway: same voices and texts
        if spec.identity_id is not None:
            identity_id = spec.identity_id
        sentences = [HARVARD[int(j)] for j in crng.choice(len(HARVARD), size=spec.sentences, replace=False)]
        entries.append({
            "id": f"clip{i:05d}",
            "split": split,
            "voice": voice_pool[int(crng.integers(len(voice_pool)))],
            "rate": int(crng.integers(spec.rate_range[0], spec.rate_range[1] + 1)),
            "pitch": int(crng.integers(spec.pitch_range[0], spec.pitch_range[1] + 1)),
            "identity_id": identity_id,
            "text": " ".join(sentences),
            "seed": int(np.random.SeedSequence([spec.seed, 303, i]).generate_state(1)[0] % (2**31)),
        })
    return entries


def identity_for(spec: CorpusSpec, identity_id: int) -> Identity:
    if identity_id == 0:
        return Identity()  # the photo as it is: one identity is always the plain subject
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 404, identity_id]))
    return Identity.random(rng, spec.identity_strength)


def clip_spec(spec: CorpusSpec, entry: dict) -> ClipSpec:
    return ClipSpec(
        text=entry["text"],
        seconds=None,
        size=spec.size,
        seed=entry["seed"],
        voice=entry["voice"],
        rate=entry["rate"],
        pitch=entry["pitch"],
        identity=identity_for(spec, entry["identity_id"]),
        style=spec.style,
    )


def make_corpus(
    spec: CorpusSpec,
    out_dir: Path,
    overwrite: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> dict:
    """Make (or finish) a corpus; returns the manifest."""
    out_dir = Path(out_dir)
    entries = plan_corpus(spec)
    log = log or (lambda _m: None)
    manifest_path = out_dir / MANIFEST
    if manifest_path.exists() and not overwrite:
        old = json.loads(manifest_path.read_text()).get("spec", {})
        old = {**_spec_dict(CorpusSpec(clips=1)), **old}  # older manifests lack style and identity_id
        old["style"] = _style_dict(old["style"])
        if {k: v for k, v in old.items() if k != "clips"} != {k: v for k, v in _spec_dict(spec).items() if k != "clips"}:
            raise UsageError(
                f"{out_dir} holds a corpus made with other settings (pass --overwrite to replace its clips)"
            )
    # Folders a killed run left half-written (atomic_directory's temporary names).
    for stale in out_dir.glob(".clip*.partial-*") if out_dir.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)
    made = skipped = 0
    for entry in entries:
        cspec = clip_spec(spec, entry)
        folder = out_dir / entry["id"]
        meta_path = folder / "meta.json"
        if folder.exists() and meta_path.exists() and not overwrite:
            if _same_clip(json.loads(meta_path.read_text()).get("spec"), cspec):
                skipped += 1
                continue
            raise UsageError(f"{folder} exists with other settings (pass --overwrite)")
        log(f"{entry['id']} [{entry['split']}] voice {entry['voice']}, identity {entry['identity_id']}: {entry['text']}")
        write_clip(cspec, folder, overwrite=True, extra_meta={"corpus_entry": entry})
        meta = json.loads(meta_path.read_text())
        entry["frames"] = meta["frames"]
        made += 1
    for entry in entries:  # frame counts of clips made in an earlier run
        if "frames" not in entry:
            entry["frames"] = json.loads((out_dir / entry["id"] / "meta.json").read_text())["frames"]
    manifest = {
        "format": "geneface-synth-corpus",
        "format_version": 1,
        "spec": _spec_dict(spec),
        "identities": {str(i): identity_for(spec, i).to_dict() for i in range(spec.identities)},
        "splits": {
            s: {
                "voices": sorted({e["voice"] for e in entries if e["split"] == s}),
                "identities": sorted({e["identity_id"] for e in entries if e["split"] == s}),
                "clips": sum(e["split"] == s for e in entries),
            }
            for s in ("train", "test")
        },
        "clips": entries,
        "versions": versions(),
    }
    with atomic_output(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"{made} clips made, {skipped} already there; manifest {manifest_path}")
    return manifest


def _style_dict(d) -> Optional[dict]:
    """A recorded style with the defaults of keys older files lack; None if unreadable."""
    try:
        return Style.from_dict(d).to_dict()
    except (TypeError, UsageError):
        return None


def _same_clip(old: Optional[dict], cspec: ClipSpec) -> bool:
    """Whether a clip's recorded spec is `cspec` (older clips lack newer style keys)."""
    if not isinstance(old, dict) or "style" not in old:
        return False
    return {**old, "style": _style_dict(old["style"])} == cspec.to_dict()


def _spec_dict(spec: CorpusSpec) -> dict:
    d = attrs.asdict(spec)
    d["voices"] = list(spec.voices)
    d["rate_range"] = list(spec.rate_range)
    d["pitch_range"] = list(spec.pitch_range)
    return d
