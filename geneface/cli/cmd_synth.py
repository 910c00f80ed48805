"""Offline speech and the synthetic talking subject: `say`, `synth`, `synth-corpus`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from geneface.cli.app import app

_VOICE = typer.Option("en-us", "--voice", "-v", help="eSpeak NG voice, optionally +variant: en-us, en-gb-x-rp+m3, de+f2 ...")
_RATE = typer.Option(160, "--rate", "-r", help="Speaking rate in words per minute (80-450).")
_PITCH = typer.Option(50, "--pitch", "-p", help="Voice pitch (0-99).")
_CORNER = typer.Option(
    0.0, "--lip-corner-offset", help="Raise the subject's left mouth corner by this x 4 mm x (0.5 + jaw opening) (style, -1..1)."
)


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _list_voices() -> None:
    from geneface.speech import list_variants, list_voices

    for v in list_voices():
        typer.echo(f"{v.code:24s} {v.name}")
    typer.echo("variants (append as +NAME): " + ", ".join(list_variants()))


@app.command()
def say(
    text: Optional[str] = typer.Argument(None, help="What to say."),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Audio file to write, 16 kHz mono, in the format its extension names: .wav, .flac, .ogg or .mp3."
    ),
    voice: str = _VOICE,
    rate: int = _RATE,
    pitch: int = _PITCH,
    phonemes: Optional[Path] = typer.Option(
        None, "--phonemes", help="Where to write the phoneme timings (JSON); default: next to the WAV as NAME.phonemes.json."
    ),
    list_voices: bool = typer.Option(False, "--list-voices", help="List the installed voices and variants, then exit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the audio and timing files if they exist."),
) -> None:
    """Speak TEXT offline with eSpeak NG; write the audio and the time of every phoneme."""
    from geneface.core.atomic import atomic_output
    from geneface.core.media import audio_suffixes, write_audio
    from geneface.core.outputs import prepare_output
    from geneface.errors import UsageError
    from geneface.speech import engine_info, synthesize

    if list_voices:
        _list_voices()
        return
    if text is None:
        raise UsageError("give the TEXT to say (or --list-voices)")
    if output is None:
        raise UsageError("give --output/-o, the audio file to write (.wav, .flac, .ogg or .mp3)")
    # Both outputs are checked before synthesising: the extension too, so `-o x.mp3` is
    # an mp3 (and `-o x.m4a` a one-line refusal), never a WAV under another name.
    table_path = phonemes or output.with_name(output.stem + ".phonemes.json")
    prepare_output(output, overwrite=overwrite, suffixes=audio_suffixes())
    if table_path.expanduser().resolve() == output.expanduser().resolve():
        raise UsageError(f"{table_path}: --phonemes and --output name the same file")
    prepare_output(table_path, overwrite=overwrite, what="--phonemes")
    speech = synthesize(text, voice=voice, rate=rate, pitch=pitch)
    write_audio(output, speech.audio, overwrite=overwrite)
    table = {
        "text": speech.text,
        "voice": speech.voice,
        "rate": speech.rate,
        "pitch": speech.pitch,
        "sample_rate": speech.audio.sample_rate,
        "duration": speech.duration,
        "engine": engine_info(),
        "phonemes": speech.phoneme_table(),
    }
    with atomic_output(table_path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(table, indent=2) + "\n")
    _log(f"{output}: {speech.duration:.2f} s, {len(speech.spoken())} phonemes ({speech.voice}); timings in {table_path}")


@app.command()
def synth(
    output: Path = typer.Option(..., "--output", "-o", help="Clip folder to create."),
    seconds: Optional[float] = typer.Option(None, "--seconds", "-s", help="Clip length (default: the text's length; 10 s of sentences without --text)."),
    size: int = typer.Option(256, "--size", help="Frame side in pixels (even; 256 or 512 usual)."),
    text: Optional[str] = typer.Option(None, "--text", "-t", help="What the subject says (default: Harvard sentences)."),
    seed: int = typer.Option(0, "--seed", help="Seed for blinks, head motion and sentence order."),
    voice: str = _VOICE,
    rate: int = _RATE,
    pitch: int = _PITCH,
    identity_seed: Optional[int] = typer.Option(None, "--identity-seed", help="Draw a random identity variation from this seed (explicit options below override it)."),
    hue: Optional[float] = typer.Option(None, "--hue", help="Hue shift of the whole picture, degrees."),
    saturation: Optional[float] = typer.Option(None, "--saturation", help="Saturation gain."),
    brightness: Optional[float] = typer.Option(None, "--brightness", help="Brightness gain."),
    skin_tone: Optional[str] = typer.Option(None, "--skin-tone", help="R,G,B gains inside the face, e.g. 1.1,1.0,0.9."),
    scale: Optional[float] = typer.Option(None, "--scale", help="Face size in the frame (1 = default framing)."),
    face_width: Optional[float] = typer.Option(None, "--face-width", help="Relative face width change, e.g. 0.08."),
    face_length: Optional[float] = typer.Option(None, "--face-length", help="Relative lower-face length change."),
    jaw_width: Optional[float] = typer.Option(None, "--jaw-width", help="Relative jaw width change."),
    mouth_amplitude: float = typer.Option(1.0, "--mouth-amplitude", help="Jaw opening gain (style), e.g. 1.5."),
    lip_amplitude: float = typer.Option(1.0, "--lip-amplitude", help="Lip spread/rounding gain (style)."),
    coarticulation: float = typer.Option(1.0, "--coarticulation", help="Width of each phoneme's influence (>1 smoother)."),
    motion_amplitude: float = typer.Option(1.0, "--motion-amplitude", help="Head motion gain (0 = still head)."),
    blink_rate: float = typer.Option(1.0, "--blink-rate", help="Blink rate gain (0 = no blinks)."),
    lip_corner_offset: float = _CORNER,
    audio_offset: int = typer.Option(0, "--audio-offset-frames", help="Delay the muxed audio by this many frames (negative: advance)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing clip folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Make a synthetic talking-head clip with speech and exact ground truth."""
    import attrs
    import numpy as np

    from geneface.core.outputs import prepare_output
    from geneface.errors import UsageError
    from geneface.synth.clip import ClipSpec, write_clip
    from geneface.synth.variation import Identity, Style

    prepare_output(output, kind="dir", overwrite=overwrite, replaceable=lambda p: (p / "meta.json").is_file())
    base = Identity.random(np.random.default_rng(identity_seed)) if identity_seed is not None else Identity()
    changes = {
        k: v
        for k, v in dict(
            hue_shift=hue, saturation=saturation, brightness=brightness, scale=scale,
            face_width=face_width, face_length=face_length, jaw_width=jaw_width,
        ).items()
        if v is not None
    }
    if skin_tone is not None:
        try:
            changes["skin_tone"] = tuple(float(x) for x in skin_tone.split(","))
        except ValueError:
            raise UsageError(f"--skin-tone wants three numbers like 1.1,1.0,0.9, got {skin_tone!r}") from None
    identity = attrs.evolve(base, **changes)
    style = Style(
        mouth_amplitude=mouth_amplitude, lip_amplitude=lip_amplitude, coarticulation=coarticulation,
        motion_amplitude=motion_amplitude, blink_rate=blink_rate, lip_corner_offset=lip_corner_offset,
    )
    spec = ClipSpec(
        text=text, seconds=seconds, size=size, seed=seed, voice=voice, rate=rate, pitch=pitch,
        identity=identity, style=style, audio_offset_frames=audio_offset,
    )
    folder = write_clip(spec, output, overwrite=overwrite, progress=not quiet)
    meta = json.loads((folder / "meta.json").read_text())
    note = " (text cut at --seconds)" if meta["truncated"] else ""
    _log(f"{folder}: {meta['frames']} frames, {meta['duration']:.2f} s at {size}x{size}, voice {meta['voice_resolved']}{note}")


@app.command("synth-corpus")
def synth_corpus(
    output: Path = typer.Argument(..., help="Corpus folder (created, or resumed if it exists)."),
    clips: int = typer.Option(..., "--clips", "-n", help="Number of clips."),
    size: int = typer.Option(256, "--size", help="Frame side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Corpus seed: decides every clip's voice, identity, text and motion."),
    voices: Optional[str] = typer.Option(None, "--voices", help="Comma-separated voices (default: 12 English voices/variants)."),
    identities: int = typer.Option(8, "--identities", help="Number of distinct identity variations."),
    test_fraction: float = typer.Option(0.25, "--test-fraction", help="Share of clips in the test split (held-out voices and identities)."),
    sentences: int = typer.Option(1, "--sentences", help="Sentences per clip (one is about 2-3 s)."),
    identity_strength: float = typer.Option(1.0, "--identity-strength", help="How far identities stray from the photo."),
    identity_id: Optional[int] = typer.Option(
        None, "--identity-id", help="Every clip uses this one of the --identities (0 = the plain photo): a corpus of one person; needs --test-fraction 0."
    ),
    mouth_amplitude: float = typer.Option(1.0, "--mouth-amplitude", help="Jaw opening gain of every clip (style)."),
    lip_amplitude: float = typer.Option(1.0, "--lip-amplitude", help="Lip spread/rounding gain of every clip (style)."),
    lip_corner_offset: float = _CORNER,
    overwrite: bool = typer.Option(False, "--overwrite", help="Remake clips even if present."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-clip log."),
) -> None:
    """Make a corpus of short clips with many voices and identities, with a held-out test split."""
    from geneface.core.outputs import prepare_output
    from geneface.synth.corpus import DEFAULT_VOICES, CorpusSpec, make_corpus
    from geneface.synth.variation import Style

    prepare_output(output, kind="dir", existing_ok=True, what="OUTPUT")  # an existing corpus is resumed
    voice_list = tuple(v.strip() for v in voices.split(",") if v.strip()) if voices else DEFAULT_VOICES
    spec = CorpusSpec(
        clips=clips, seed=seed, size=size, voices=voice_list, identities=identities,
        test_fraction=test_fraction, sentences=sentences, identity_strength=identity_strength,
        style=Style(mouth_amplitude=mouth_amplitude, lip_amplitude=lip_amplitude, lip_corner_offset=lip_corner_offset),
        identity_id=identity_id,
    )
    manifest = make_corpus(spec, output, overwrite=overwrite, log=None if quiet else _log)
    splits = manifest["splits"]
    _log(
        f"{output}: {splits['train']['clips']} train clips ({len(splits['train']['voices'])} voices), "
        f"{splits['test']['clips']} test clips ({len(splits['test']['voices'])} held-out voices)"
    )
