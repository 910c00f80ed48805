"""Streaming (`geneface stream`, geneface.app.stream): frames from audio as it arrives.

The chain streamed is the real audio-to-video one at 64 px: mel -> a tiny trained vae ->
identity -> person_postprocess (clamp, smoothing, the person's looped head path) ->
nearest_frame (fitted in a second on the synthetic subject). With the look-ahead it needs,
every frame equals, bit for bit, the frame `Pipeline.run` hands its video writer, whatever
the chunk size; each stage's declared context is checked on its own too.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import numpy as np
import pytest
import yaml

import geneface.registry as registry_mod
from conftest import talking_motion
from geneface.app import run as run_module
from geneface.app.stream import Streamer, plan_stream
from geneface.app.stream_run import FrameSink
from geneface.cli import main
from geneface.core import media
from geneface.core.atomic import HOST
from geneface.core.records import Audio, Motion, frames_for_duration
from geneface.core.spec import parse_spec, validate_spec
from geneface.core.stages import RunContext, StreamContext
from geneface.errors import UsageError
from geneface.registry import get_registry
from support.mel_models import mel_vae
from support.subject import subject_dataset

PLUGINS = "geneface-landmark-viz,geneface-nearest-frame"
SECONDS = 7.3  # long enough that frames come out well before the end (the chain needs 2.4 s ahead)
FRAME = 640  # samples per video frame
N_FRAMES = frames_for_duration(SECONDS)  # 183: the run's video frames


@pytest.fixture(autouse=True)
def nearest_frame_plugin(_no_third_party_by_default, monkeypatch):
    monkeypatch.setenv(registry_mod.ENV_ALLOW, PLUGINS)
    registry_mod._REGISTRY = None


@attrs.frozen
class Chain:
    person: Path
    vae: Path
    renderer: Path
    wav: Path
    samples: np.ndarray


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry_mod.ENV_ALLOW, PLUGINS)
        mp.setattr(registry_mod, "_REGISTRY", None)
        person = subject_dataset(base / "subject_2s")  # shared with the renderer tests
        vae = mel_vae(base)
        fitted = base / "stream_nearest_frame"
        if not (fitted / "model.safetensors").exists():
            assert main(["train", "renderer", "--plugin", "nearest_frame", "--data", str(person), "--out",
                         str(fitted), "-q"]) == 0
    registry_mod._REGISTRY = None
    # The subject's 2 s of speech and a pause, repeated: speech and silence both stream.
    speech = media.read_audio(person / "audio.wav")
    unit = np.concatenate([speech.samples, np.zeros(int(0.8 * speech.sample_rate), np.float32)])
    samples = np.tile(unit, 4)[: int(SECONDS * speech.sample_rate)]
    wav = base / "stream_speech.wav"
    media.write_wav(wav, Audio(samples))
    return Chain(person, vae, fitted / "model.safetensors", wav, media.read_audio(wav).samples)


def spec_dict(chain: Chain, renderer: str = "nearest_frame", post: dict | None = None) -> dict:
    quiet = {"blink": {"enabled": False}, "silence": {"enabled": False}}  # the exact steps only
    stages = {
        "audio_encoder": "mel",
        "motion_generator": {"plugin": "vae", "checkpoint": str(chain.vae)},
        "domain_adapter": "identity",
        "post_processor": {"plugin": "person_postprocess",
                           "config": {"person": str(chain.person), **(quiet if post is None else post)}},
        "renderer": ({"plugin": "nearest_frame", "checkpoint": str(chain.renderer)} if renderer == "nearest_frame"
                     else {"plugin": renderer, "config": {"size": 64}}),
    }
    return {"stages": stages, "output": "out.mp4"}


def spec_of(chain: Chain, folder: Path, **kw):
    return parse_spec(spec_dict(chain, **kw), folder)


def offline(spec, wav: Path, folder: Path, monkeypatch):
    """(frames, cameras' c2w) that `Pipeline.run` hands its video writer and its renderer."""
    frames, cameras = [], []

    class Capture:
        def __init__(self, *args, **kwargs):
            self.n_frames = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def write(self, frame):
            frames.append(frame.copy())
            self.n_frames += 1

    monkeypatch.setattr(run_module, "VideoWriter", Capture)
    registry = get_registry()
    pipeline = run_module.Pipeline(validate_spec(spec, registry, have_audio=True), registry)
    renderer = pipeline.stages[-1]
    render = renderer.render

    def spy(motion, camera=None):
        cameras.append(None if camera is None else camera.c2w.copy())
        return render(motion, camera)

    monkeypatch.setattr(renderer, "render", spy)
    pipeline.run(audio_path=wav, output=folder / "offline.mp4")
    return frames, cameras[0]


def stream(streamer: Streamer, samples: np.ndarray, chunk: int):
    """(frames by index, the renderer's cameras' c2w in order) from feeding `samples` in chunks."""
    cameras = []
    render_part = streamer.renderer.render_part

    def spy(motion, camera, start, stop):
        if camera is not None:
            cameras.append(camera.c2w[start:stop].copy())
        return render_part(motion, camera, start, stop)

    streamer.renderer.render_part = spy
    out = []
    for i in range(0, len(samples), chunk):
        got = streamer.feed(samples[i:i + chunk])
        assert all(index < (i + chunk) // FRAME for index, _ in got)  # never ahead of the audio
        out += got
    out += streamer.finish()
    return out, (np.concatenate(cameras) if cameras else None)


@pytest.fixture(scope="module")
def reference(chain, tmp_path_factory):
    folder = tmp_path_factory.mktemp("offline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry_mod.ENV_ALLOW, PLUGINS)
        mp.setattr(registry_mod, "_REGISTRY", None)
        frames, cameras = offline(spec_of(chain, folder), chain.wav, folder, mp)
    registry_mod._REGISTRY = None
    return frames, cameras


# -- the streamer -------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_ms", [200, 70])
def test_streamed_frames_equal_the_offline_run_whatever_the_chunks(chain, reference, tmp_path, chunk_ms,
                                                                   one_torch_thread):
    frames, cameras = reference
    assert len(frames) == N_FRAMES
    streamer = Streamer.from_spec(spec_of(chain, tmp_path), get_registry(), lookahead=None)
    assert streamer.plan.exact and streamer.plan.ahead == streamer.plan.need
    out, streamed_cameras = stream(streamer, chain.samples, chunk_ms * 16)
    assert [i for i, _ in out] == list(range(len(frames)))
    unequal = [i for i, frame in out if not np.array_equal(frame, frames[i])]
    assert unequal == []
    # The renderer got the offline head path (the person's poses looped back and forth), frame for frame.
    assert np.array_equal(streamed_cameras, cameras)
    lat = streamer.latency()
    assert lat.exact and lat.why_not_exact == () and lat.frames == len(frames) and lat.dropped == 0
    assert lat.chunks == -(-len(chain.samples) // (chunk_ms * 16))
    assert lat.needed_lookahead == lat.lookahead == pytest.approx(streamer.plan.need / 25)
    # Frames came out while audio was still arriving, and memory stayed a window's.
    assert streamer._buffer.size <= (streamer.plan.back + streamer.plan.need + 2) * FRAME + chunk_ms * 16
    assert lat.first_frame is not None and lat.max_lag >= lat.steady_lag >= 0


def test_input_poses_reach_the_renderer_as_offline(chain, tmp_path, monkeypatch, capsys, one_torch_thread):
    data = spec_dict(chain)
    data["input"] = {"poses": str(chain.person)}  # 50 poses for 183 frames: looped back and forth
    spec = parse_spec(data, tmp_path)
    _, cameras = offline(spec, chain.wav, tmp_path, monkeypatch)
    capsys.readouterr()
    streamer = Streamer.from_spec(spec, get_registry(), lookahead=0.4)
    _, streamed = stream(streamer, chain.samples, 3200)
    assert np.array_equal(streamed, cameras) and len(cameras) == N_FRAMES
    assert capsys.readouterr().err.count("looping them back and forth") == 1


def test_bounded_lookahead_is_approximate_and_says_which_stage_needs_more(chain, reference, tmp_path,
                                                                         one_torch_thread):
    frames, _ = reference
    streamer = Streamer.from_spec(spec_of(chain, tmp_path), get_registry(), lookahead=0.4)
    assert streamer.plan.ahead == 10 and streamer.plan.need > 10
    out, _ = stream(streamer, chain.samples, 3200)
    assert [i for i, _ in out] == list(range(len(frames)))  # every frame still comes, sooner
    lat = streamer.latency()
    assert not lat.exact and lat.lookahead == pytest.approx(0.4)
    (why,) = lat.why_not_exact
    assert "look-ahead bounded to 0.40 s" in why and "motion_generator 'vae'" in why
    # Approximate, not wrong: most frames still match, and the last ones (flushed with the end) all do.
    same = [np.array_equal(frame, frames[i]) for i, frame in out]
    assert sum(same) > 0.5 * len(same) and all(same[-10:])


def test_approximate_stages_are_named_with_their_reason(chain, tmp_path):
    spec = spec_of(chain, tmp_path, post={})  # blinks and the closed mouth on (the defaults)
    streamer = Streamer.from_spec(spec, get_registry(), lookahead=None)
    assert not streamer.plan.exact
    (why,) = streamer.plan.problems
    assert why.startswith("post_processor 'person_postprocess' is approximate")
    assert "blink:" in why and "silence: silero-vad" in why


def test_max_lag_drops_older_frames_and_says_so(chain, tmp_path, one_torch_thread):
    ticks = iter(np.arange(0.0, 1e6, 0.5))  # each reading of the clock is half a second later
    streamer = Streamer.from_spec(spec_of(chain, tmp_path), get_registry(), lookahead=0.4, max_lag=0.2,
                                  clock=lambda: float(next(ticks)))
    out, _ = stream(streamer, chain.samples, 6400)
    indices = [i for i, _ in out]
    assert indices == sorted(set(indices)) and indices[-1] == N_FRAMES - 1
    lat = streamer.latency()
    assert lat.dropped > 0 and lat.dropped + lat.frames == N_FRAMES
    assert not lat.exact and any("dropped" in w for w in lat.why_not_exact)


def test_frame_sink_fills_dropped_frames_with_the_last_one():
    raw = io.BytesIO()
    sink = FrameSink(None, raw)
    a, b = (np.full((2, 2, 3), v, np.uint8) for v in (1, 2))
    sink.frames([(1, a)])  # frame 0 dropped: the first frame there is stands in
    sink.frames([(4, b)])
    assert sink.written == 5
    assert list(np.frombuffer(raw.getvalue(), np.uint8).reshape(5, -1)[:, 0]) == [1, 1, 1, 1, 2]


def test_misuse_is_one_line(chain, tmp_path):
    streamer = Streamer.from_spec(spec_of(chain, tmp_path), get_registry())
    with pytest.raises(UsageError, match="no audio"):
        streamer.finish()
    with pytest.raises(UsageError, match="finished"):
        streamer.feed(np.zeros(100, np.float32))
    streamer = Streamer.from_spec(spec_of(chain, tmp_path), get_registry())
    with pytest.raises(UsageError, match="mono"):
        streamer.feed(np.zeros((10, 2), np.float32))
    with pytest.raises(UsageError, match="lookahead"):
        plan_stream(streamer.pipeline.stages, -1.0)


# -- each stage's declared context, on its own ----------------------------------------------------


def assert_streams_exactly(stage, record, cut, rows, n_frames: int, windows, audio=None):
    """`stage` on input frames [a - back, b + ahead) (clipped to the run) gives its offline output on
    frames [a, b), bit for bit. `cut(record, lo, hi)`: the input's frames lo..hi-1 (hi == n: to
    the end); `rows(output, lo, hi)`: the output's rows for frames lo..hi-1."""
    context = stage.stream_context()
    assert isinstance(context, StreamContext) and context.exact, context
    whole = stage.apply(record, RunContext(audio))
    for a, b in windows:
        lo, hi = max(0, a - context.back), min(n_frames, b + context.ahead)
        part = stage.apply(cut(record, lo, hi), RunContext(audio, offset=lo, streamed=True))
        assert np.array_equal(rows(part, a - lo, b - lo), rows(whole, a, b)), (stage.name, a, b)


def _cut_motion(motion, lo, hi):
    return motion.with_landmarks(motion.landmarks[lo:hi])


def _motion_rows(motion, a, b):
    return motion.landmarks[a:b]


WINDOWS = [(0, 7), (3, 40), (41, 42), (57, 100), (90, 120)]


def test_mel_context(chain):
    from geneface.plugins.mel import MelEncoder

    samples = chain.samples[: 120 * FRAME + 333]  # a partial last frame
    n = round(len(samples) / FRAME)

    def cut(audio, lo, hi):
        return Audio(audio.samples[lo * FRAME: hi * FRAME if hi < n else len(audio.samples)])

    for config in ({}, {"energy": True}):
        encoder = MelEncoder(MelEncoder.Config(**config))
        assert_streams_exactly(encoder, Audio(samples), cut, lambda f, a, b: f.values[2 * a: 2 * b], n,
                               WINDOWS + [(100, n)])
    pitch = MelEncoder(MelEncoder.Config(pitch=True)).stream_context()
    assert not pitch.exact and "loudest" in pitch.why


def test_adapters_contexts():
    from geneface.plugins.adversarial_postnet import AdversarialPostnet, PostnetConfig
    from geneface.plugins.identity_adapter import IdentityAdapter
    from geneface.plugins.landmark_projection import LandmarkProjection

    import torch

    motion = talking_motion(120, seed=3)
    motion = Motion(motion.landmarks, 25.0, motion.landmarks.mean(0), motion.landmarks.std(0) + 1e-3)
    person = talking_motion(200, seed=4).landmarks
    mean, std = person.mean(0), person.std(0) + 1e-3
    projection = LandmarkProjection().fit(((person - mean) / std).reshape(len(person), -1), mean, std)
    torch.manual_seed(0)
    postnet = AdversarialPostnet(PostnetConfig(widths=(16, 32, 16)))
    for p in postnet.net.generator.parameters():
        torch.nn.init.normal_(p, std=0.05)
    postnet.net.person_mean.copy_(torch.from_numpy(mean))
    postnet.net.person_std.copy_(torch.from_numpy(std))
    for stage in (IdentityAdapter(), projection, postnet):
        assert_streams_exactly(stage, motion, _cut_motion, _motion_rows, 120, WINDOWS)
    assert postnet.stream_context() == StreamContext(postnet.net.generator.reach, postnet.net.generator.reach)


def test_post_processor_context(chain):
    from geneface.core.config import structure
    from geneface.plugins.person_postprocess import PersonPostprocess

    config = spec_dict(chain)["stages"]["post_processor"]["config"]
    stage = PersonPostprocess(structure(PersonPostprocess.Config, config, "config", chain.person))
    motion = talking_motion(120, seed=5)
    assert stage.stream_context() == StreamContext(3, 3)  # the Gaussian's radius at sigma 1
    assert_streams_exactly(stage, motion, _cut_motion, _motion_rows, 120, WINDOWS)


def test_renderer_contexts(chain):
    from geneface_landmark_viz.sketch import LandmarkSketch

    from geneface.core.dataset import Dataset

    renderer = get_registry().load(chain.renderer, "renderer", "test")
    motion = Motion(Dataset(chain.person).landmarks_canonical(), 25.0)  # the person's own layout (50 frames)
    whole = list(renderer.render(motion))
    assert renderer.stream_context() == StreamContext(0, 0)
    for a, b in [(0, 5), (5, 6), (30, 50)]:
        part = list(renderer.render_part(_cut_motion(motion, a, b), None, 0, b - a))
        assert all(np.array_equal(x, y) for x, y in zip(part, whole[a:b])) and len(part) == b - a
    sketch = LandmarkSketch()
    assert sketch.stream_context() is None and "whole motion" in sketch.stream_problem()


# -- the command ------------------------------------------------------------------------------------


def write_spec(chain: Chain, folder: Path, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec_dict(chain, **kw)))
    return path


def test_command_writes_the_video_and_the_report(chain, tmp_path, capsys, one_torch_thread):
    spec = write_spec(chain, tmp_path)
    out, report = tmp_path / "live.mp4", tmp_path / "latency.json"
    args = ["stream", str(spec), "--audio", str(chain.wav), "-o", str(out), "--json", str(report),
            "--chunk-ms", "200", "--lookahead", "exact"]
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"wrote {out}: {N_FRAMES} frames" in printed and "exact: yes" in printed
    info = media.probe_video(out)
    assert info.has_audio and info.n_frames() == N_FRAMES and (info.width, info.height) == (64, 64)
    data = json.loads(report.read_text())
    lat = data["latency"]
    for key in ("first_frame", "steady_lag", "lag_p90", "max_lag", "frames", "dropped", "chunks", "exact",
                "why_not_exact", "lookahead", "needed_lookahead"):
        assert key in lat
    assert lat["frames"] == N_FRAMES and lat["dropped"] == 0 and lat["chunks"] == 37 and lat["exact"] is True
    assert [s["stage"] for s in data["stages"]][:2] == ["audio_encoder 'mel'", "motion_generator 'vae'"]
    assert not list(tmp_path.glob(".*partial*"))  # written under a temporary name, renamed when complete

    # An existing output is refused in one line before any work, unless --overwrite.
    before = out.stat().st_mtime_ns
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(out) in err and "--overwrite" in err and out.stat().st_mtime_ns == before


def test_command_reads_pcm_from_stdin_and_writes_raw_frames(chain, tmp_path, monkeypatch, capsysbinary,
                                                            one_torch_thread):
    spec = write_spec(chain, tmp_path)
    pcm = (np.clip(chain.samples[: 3 * 16000 + 100], -1, 1) * 32767).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    raw = tmp_path / "frames.rgb"
    assert main(["stream", str(spec), "--audio", "-", "--raw", str(raw), "--chunk-ms", "100"]) == 0
    n = frames_for_duration((3 * 16000 + 100) / 16000)
    assert raw.stat().st_size == n * 64 * 64 * 3
    assert b"exact: no" in capsysbinary.readouterr().out  # the default look-ahead, 0.4 s, is bounded
    # Raw frames to stdout: the report goes to stderr.
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    assert main(["stream", str(spec), "--audio", "-", "--raw", "-", "--lookahead", "exact"]) == 0
    captured = capsysbinary.readouterr()
    assert len(captured.out) == n * 64 * 64 * 3 and b"exact: yes" in captured.err


def test_a_stage_that_cannot_stream_is_one_line(chain, tmp_path, capsys):
    spec = write_spec(chain, tmp_path, renderer="landmark_sketch")
    assert main(["stream", str(spec), "--audio", str(chain.wav), "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: renderer 'landmark_sketch' cannot stream: one scale")
    assert not (tmp_path / "x.mp4").exists()
    assert main(["stream", str(spec), "--audio", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: no such file" in capsys.readouterr().err
    assert main(["stream", str(spec), "--audio", str(chain.wav), "--lookahead", "soon"]) == 2
    assert "--lookahead" in capsys.readouterr().err


@pytest.fixture(scope="module")
def hashgrid(chain, tmp_path_factory):
    """A tiny `hashgrid_nerf` of the chain's person (60 steps: the picture does not matter here)."""
    out = tmp_path_factory.getbasetemp() / "stream_hashgrid"
    if not (out / "model.safetensors").exists():
        assert main(["train", "renderer", "--plugin", "hashgrid_nerf", "--data", str(chain.person), "--out", str(out),
                     "--steps", "60", "--batch-size", "1024", "--lr", "5e-3", "--val-every", "60", "-q"]) == 0
    return out / "model.safetensors"


def test_hashgrid_nerf_streams_frames_equal_to_the_offline_run(chain, hashgrid, tmp_path, monkeypatch,
                                                               one_torch_thread):
    data = spec_dict(chain)
    data["stages"]["renderer"] = {"plugin": "hashgrid_nerf", "checkpoint": str(hashgrid)}
    spec = parse_spec(data, tmp_path)
    frames, _ = offline(spec, chain.wav, tmp_path, monkeypatch)
    streamer = Streamer.from_spec(spec, get_registry(), lookahead=None)
    assert streamer.renderer.stream_context() == StreamContext(0, 0)
    out, _ = stream(streamer, chain.samples, 3200)
    assert [i for i, _ in out] == list(range(len(frames))) and len(frames) == N_FRAMES
    assert [i for i, frame in out if not np.array_equal(frame, frames[i])] == []


# -- stopped from outside, and bad input ------------------------------------------------------------


def _long_wav(chain: Chain, folder: Path) -> Path:
    wav = folder / "long.wav"
    media.write_wav(wav, Audio(np.tile(chain.samples, 8)))  # 58 s: a realtime stream still running when stopped
    return wav


def _start_stream(spec: Path, wav: Path, out: Path, raw: Path) -> subprocess.Popen:
    """`geneface stream` in its own process, paced in real time, once it is writing both its partials."""
    proc = subprocess.Popen([sys.executable, "-m", "geneface", "stream", str(spec), "--audio", str(wav), "-o",
                             str(out), "--raw", str(raw), "--realtime"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.parent.glob(".*.partial-*"))) < 2 or not any(
            p.stat().st_size for p in out.parent.glob(".live.partial-*.rgb")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stream never started writing"
        time.sleep(0.2)
    return proc


def test_sigterm_mid_stream_cleans_up_says_one_line_and_exits_143(chain, tmp_path):
    spec = write_spec(chain, tmp_path)
    out, raw = tmp_path / "live.mp4", tmp_path / "live.rgb"
    proc = _start_stream(spec, _long_wav(chain, tmp_path), out, raw)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err == "error: terminated (SIGTERM)\n", err
    assert not out.exists() and not raw.exists() and not list(tmp_path.glob(".*partial*"))


def test_partials_of_a_killed_stream_are_swept_by_the_next_and_a_live_ones_kept(chain, tmp_path, capsys,
                                                                                 one_torch_thread):
    spec = write_spec(chain, tmp_path)
    out, raw = tmp_path / "live.mp4", tmp_path / "live.rgb"
    proc = _start_stream(spec, _long_wav(chain, tmp_path), out, raw)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.communicate(timeout=60)
    killed = sorted(tmp_path.glob(".*partial*"))
    assert len(killed) == 2
    owner = subprocess.Popen(["sleep", "60"])  # another run, alive, writing the same output
    try:
        alive = tmp_path / f".live.partial-{HOST}-{owner.pid}-0123abcd.mp4"
        alive.write_bytes(b"still being written")
        assert main(["stream", str(spec), "--audio", str(chain.wav), "-o", str(out), "--raw", str(raw)]) == 0, \
            capsys.readouterr().err
        assert sorted(tmp_path.glob(".*partial*")) == [alive] and alive.read_bytes() == b"still being written"
        assert media.probe_video(out).n_frames() == N_FRAMES
    finally:
        owner.kill()
        owner.wait()


def test_closed_stdin_and_a_spec_that_ends_at_motion_are_one_line(chain, tmp_path, capsys, monkeypatch):
    spec = write_spec(chain, tmp_path)
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of a closed fd 0 (`geneface stream ... <&-`)
    assert main(["stream", str(spec), "--audio", "-", "--raw", str(tmp_path / "x.rgb")]) == 2
    assert capsys.readouterr().err == ("error: --audio -: stdin is closed; pipe s16le 16 kHz mono PCM into it, "
                                       "or give a file\n")
    motion = tmp_path / "motion.yaml"
    stages = {k: v for k, v in spec_dict(chain)["stages"].items() if k in ("audio_encoder", "motion_generator")}
    motion.write_text(yaml.safe_dump({"stages": stages, "output": "out.npz"}))
    for args in ([], ["-o", str(tmp_path / "m.mp4")]):
        assert main(["stream", str(motion), "--audio", str(chain.wav), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a stream runs from audio to video" in err and "renderer last" in err, err


def test_raw_frames_into_a_pipe_whose_reader_closes_stop_with_one_line(chain, tmp_path):
    """`--raw - | head -c 1000`: one line and 141 (a Unix tool's code for a closed pipe), no traceback,
    and the mp4 written beside it is not left half-done."""
    spec = write_spec(chain, tmp_path)
    out = tmp_path / "beside.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "geneface", "stream", str(spec), "--audio", str(chain.wav),
                             "--raw", "-", "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(proc.stdout.read(1000)) == 1000
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err.startswith("error: --raw -: the reader of stdout closed it after ") and err.count("\n") == 1, err
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
