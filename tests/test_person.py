"""A person of several clips (geneface.core.person): the held-out rule by whole clips, and the
person read as one video through the same Dataset interface."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geneface.core.dataset import Dataset, DatasetError, held_out_start
from geneface.core.person import PersonDataset, held_out_clips_start, open_dataset, write_person_manifest
from tests.support.people import person_from_clips


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    return person_from_clips(tmp_path_factory.mktemp("people"))


def test_held_out_clips_are_the_last_whole_clips_holding_a_share():
    # 800 GRID-like clips of 75 frames: ceil(60000 / 11) = 5455 frames -> the last 73 clips
    assert held_out_clips_start([75] * 800) == 800 - 73
    # the last clip alone holds more than 1/11: it alone is held out, never split
    assert held_out_clips_start([500, 750, 500]) == 2
    # many short clips at the end: as few as reach the share
    assert held_out_clips_start([1000, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]) == 1
    # one clip: no held-out clip (its own last 1/11 is, by the frame rule)
    assert held_out_clips_start([100]) == 1
    # the first clip always trains
    assert held_out_clips_start([10, 1000]) == 1


def test_person_reads_as_one_video(person):
    ds = open_dataset(person)
    assert isinstance(ds, PersonDataset) and ds.n_clips == 3
    clips = [Dataset(c.path) for c in ds.clips]
    n = sum(c.n_frames for c in clips)
    assert ds.n_frames == n
    # held out: the last clip, whole; training: every usable frame before it
    start = clips[0].n_frames + clips[1].n_frames
    assert ds.held_out_range() == (start, n)
    assert ds.training_frames().max() < start <= ds.held_out_frames().min()
    assert json.loads((person / "manifest.json").read_text())["held_out_clips"] == ["clip2"]
    # frame indices run over the clips in order; arrays are the clips' joined
    k = clips[0].n_frames + 3
    assert ds.clip_of(k) == 1
    np.testing.assert_array_equal(ds.frame(k), clips[1].frame(3))
    np.testing.assert_array_equal(ds.mask(k), clips[1].mask(3))
    np.testing.assert_array_equal(ds.landmarks_canonical()[k], clips[1].landmarks_canonical()[3])
    np.testing.assert_array_equal(ds.camera().c2w[k], clips[1].camera().c2w[3])
    assert ds.audio_features("mel").values.shape[0] == 2 * n
    np.testing.assert_array_equal(ds.clip_index(), np.repeat([0, 1, 2], [c.n_frames for c in clips]))
    # each clip keeps its own background plate
    plates = [ds.background(c) for c in range(3)]
    assert all(np.abs(plates[0].astype(int) - p.astype(int)).mean() > 3 for p in plates[1:])
    # statistics over the person's training frames only
    mean, _ = ds.landmark_stats()
    np.testing.assert_allclose(mean, ds.landmarks_canonical()[ds.training_frames()].mean(0), atol=1e-5)


def test_one_video_dataset_is_one_clip(person):
    ds = open_dataset(person / "clips" / "clip0")
    assert type(ds) is Dataset and ds.n_clips == 1 and not ds.clip_index().any()
    assert ds.held_out_range()[0] == held_out_start(ds.n_frames)


def test_person_is_not_opened_as_one_video(person):
    with pytest.raises(DatasetError, match="person of several clips"):
        Dataset(person)


def test_clips_of_other_sizes_are_refused(person, tmp_path):
    other = json.loads((person / "clips" / "clip1" / "manifest.json").read_text())
    copy = tmp_path / "clip1"
    copy.mkdir()
    other["crop"]["size"] = 96
    (copy / "manifest.json").write_text(json.dumps(other))
    with pytest.raises(DatasetError, match="same --size"):
        write_person_manifest(tmp_path / "p", [person / "clips" / "clip0", copy])
