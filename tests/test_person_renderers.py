"""The person renderers on a person of several clips (geneface.core.person): a plate per clip,
frames read lazily per batch (equal to the all-in-memory frames), both NeRFs trained a few steps
and validated, held-out frames drawn over their own clip's plate, the driven render's clip."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from support.renderers import train_renderer
from support.subject import read_metrics
from geneface.core.checkpoint import read_checkpoint
from geneface.core.dataset import HEAD
from geneface.core.person import open_dataset
from geneface.errors import StageMismatchError
from geneface.registry import get_registry
from tests.support.people import person_from_clips

TINY = {
    "hashgrid_nerf": {"train": {"threads": 1}, "task": {"val_frames": 2, "val_images": 1}},
    "vanilla_nerf": {
        "train": {"threads": 1}, "task": {"val_frames": 2, "val_images": 1},
        "model": {"condition": {"dim": 16, "hidden": 32},
                  "head": {"hidden": 32, "layers": 4, "skip": 2, "colour_hidden": 16, "coarse_samples": 8,
                           "fine_samples": 8},
                  "torso": {"hidden": 32, "layers": 4, "skip": 2, "colour_hidden": 16, "coarse_samples": 4,
                            "fine_samples": 4}}},
}


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    return person_from_clips(tmp_path_factory.getbasetemp() / "people_3clips")


@pytest.fixture(scope="module")
def runs(person, tmp_path_factory):
    root = tmp_path_factory.mktemp("person_runs")
    return {plugin: train_renderer(plugin, person, root / plugin, TINY[plugin], "--steps", 4, "--batch-size", 256,
                                   "--val-every", 4, "--profile", "quick")
            for plugin in ("hashgrid_nerf", "vanilla_nerf")}


def _task(ds, capacity: int = 0):
    from geneface.plugins.hashgrid_nerf import HashGridNeRF
    from geneface.training.hashgrid_task import HashGridTaskConfig
    from geneface.training.person_renderer_task import PersonRendererTask

    stage = HashGridNeRF(HashGridNeRF.Config(**HashGridNeRF.model_from_data(ds)))
    task = PersonRendererTask(stage, ds, HashGridTaskConfig(edge_share=0.2, lip_stage=0.2))
    if capacity:
        task.store.capacity = capacity
    return task


class _AllInMemory:
    """What the task held before frames were read lazily: every frame and mask stacked."""

    def __init__(self, ds):
        self.frames = np.stack([ds.frame(i) for i in range(ds.n_frames)])
        self.masks = np.stack([ds.mask(i) for i in range(ds.n_frames)])

    def batch(self, frames):
        return self.frames[frames], self.masks[frames]


def test_lazy_frames_equal_the_frames_in_memory(person):
    ds = open_dataset(person)
    lazy, eager = _task(ds, capacity=4), _task(ds)
    eager.store = _AllInMemory(ds)
    for progress in (0.0, 0.6, 0.99):  # head, torso and lip phases: every share (boxes, masks, edges)
        for seed in range(3):
            a = lazy.sample_batch(np.random.default_rng(seed), 2048, progress)
            b = eager.sample_batch(np.random.default_rng(seed), 2048, progress)
            assert a.phase == b.phase
            for field in attrs.fields(type(a)):
                x, y = getattr(a, field.name), getattr(b, field.name)
                if isinstance(x, torch.Tensor):
                    assert torch.equal(x, y), field.name
    assert len(lazy.store._cache) <= 4 and lazy.store.reads > 4  # bounded: frames were read again


def test_regions_stream_over_every_training_frame_of_every_clip(person):
    from geneface.training.frame_store import regions

    ds = open_dataset(person)
    train = ds.training_frames()
    masks = np.stack([ds.mask(int(i)) for i in train])
    head, body = regions(ds, train, HEAD)
    assert np.array_equal(head, (masks == HEAD).any(0)) and np.array_equal(body, (masks > 0).any(0))
    assert len(np.unique(ds.clip_index()[train])) == 2  # the training clips: both of them


def test_both_nerfs_train_on_a_person_of_clips_with_a_plate_per_clip(person, runs):
    ds = open_dataset(person)
    for plugin, run in runs.items():
        metrics = read_metrics(run / "metrics.csv")
        assert np.isfinite(metrics[(4, "val", "psnr")]), plugin
        plate = read_checkpoint(run / "model.safetensors").state["plate"]
        assert plate.shape == (3, ds.size, ds.size, 3), plugin
        for k in range(3):
            assert np.array_equal(plate[k].numpy(), ds.background(k)), (plugin, k)
        assert not np.array_equal(ds.background(0), ds.background(2))  # the clips' backgrounds differ


def test_held_out_frames_are_drawn_over_their_own_clips_plate(person, runs):
    from geneface.training.person_renderer_task import evaluate_frames

    ds = open_dataset(person)
    stage = get_registry().load(runs["hashgrid_nerf"] / "model.safetensors", "renderer", "test")
    net = stage.net
    outside = ~net.person_region.numpy()
    assert outside.any()
    # one frame of each clip, drawn from its own landmarks and pose: the plate outside the person
    # region is that clip's own
    for k, span in enumerate(ds.clips):
        f = span.start + span.n_frames // 2
        frame = evaluate_frames(net, ds, [f], [f])["images"][f"frame-{f:06d}"]
        drawn = frame[:, ds.size:2 * ds.size]
        assert np.array_equal(drawn[outside], ds.background(k)[outside]), k


def test_a_driven_render_takes_the_configured_clip(person, runs):
    ds = open_dataset(person)
    path = runs["vanilla_nerf"] / "model.safetensors"
    registry = get_registry()
    motion = ds.motion(np.arange(3))
    first = registry.load(path, "renderer", "test")
    # default: the first clip, its poses as the head path
    assert np.allclose(first.default_head_path(3).c2w, ds.camera().c2w[:3])
    last = registry.load(path, "renderer", "test", overrides={"clip": ds.clips[2].name})
    span = ds.clips[2]
    assert np.allclose(last.default_head_path(3).c2w, ds.camera().c2w[span.start:span.start + 3])
    outside = ~last.net.person_region.numpy()
    for stage, k in ((first, 0), (last, 2)):
        frame = next(iter(stage.render(motion)))
        assert np.array_equal(frame[outside], ds.background(k)[outside]), k
    by_index = registry.load(path, "renderer", "test", overrides={"clip": 2})
    assert by_index.clip_index() == 2
    bad = registry.load(path, "renderer", "test", overrides={"clip": "nope"})
    with pytest.raises(StageMismatchError, match="no clip named 'nope'.*clip0, clip1, clip2"):
        list(bad.render(motion))


def test_a_window_of_landmarks_stays_in_its_clip(person):
    from geneface.plugins.vanilla_nerf import VanillaNeRF
    from geneface.training.person_renderer_task import PersonRendererTask
    from geneface.training.vanilla_task import VanillaTaskConfig

    ds = open_dataset(person)
    stage = VanillaNeRF(VanillaNeRF.Config(**VanillaNeRF.model_from_data(ds)))
    task = PersonRendererTask(stage, ds, VanillaTaskConfig())
    assert task.window == 5
    lm = task.landmarks
    s1, e1 = ds.clips[1].start, ds.clips[1].end  # the second training clip
    got = task.batch_landmarks(torch.tensor([s1, e1 - 1]))
    assert torch.equal(got[0], lm[[s1, s1, s1, s1 + 1, s1 + 2]])  # not clip 0's last frames
    assert torch.equal(got[1], lm[[e1 - 3, e1 - 2, e1 - 1, e1 - 1, e1 - 1]])  # nor the held-out clip's first
    s2 = ds.clips[2].start  # held out: validation's windows stay in it
    assert np.array_equal(task.validation_landmarks()(lm.numpy(), s2), lm.numpy()[[s2, s2, s2, s2 + 1, s2 + 2]])


def test_the_bench_renders_each_held_out_frame_over_its_own_clips_plate(person, runs):
    from geneface.metrics.render_cost import clip_runs, render_timed

    ds = open_dataset(person)
    frames = np.array([ds.clips[1].end - 2, ds.clips[1].end - 1, ds.clips[2].start, ds.clips[2].start + 1])
    parts = clip_runs(ds.clip_index()[frames])
    assert parts == [(1, 0, 2), (2, 2, 4)]
    stage = get_registry().load(runs["hashgrid_nerf"] / "model.safetensors", "renderer", "test")
    got: list = []
    render_timed(lambda: stage, ds.motion(frames), ds.camera(frames), lambda k, frame: got.append(frame), clips=parts)
    outside = ~stage.net.person_region.numpy()
    for frame, k in zip(got, (1, 1, 2, 2)):
        assert np.array_equal(frame[outside], ds.background(k)[outside]), k
    assert stage.clip_index() == 0  # back to the config's clip afterwards
