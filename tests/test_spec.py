import re
import subprocess
import sys
from pathlib import Path

import pytest

import geneface

from geneface.core.config import structure
from geneface.core.spec import load_spec, parse_spec, validate_spec
from geneface.errors import PluginError, SpecError
from geneface.registry import get_registry


def _write(tmp_path, text, name="spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_spec_folder(tmp_path):
    sub = tmp_path / "project"
    sub.mkdir()
    spec = load_spec(_write(sub, "input: {audio: a.wav}\nstages: {audio_encoder: mel}\noutput: out/f.npz\n"))
    assert spec.input.audio == sub.resolve() / "a.wav"
    assert spec.output == sub.resolve() / "out" / "f.npz"
    assert spec.stages[0].plugin == "mel" and spec.stages[0].kind == "audio_encoder"


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "input:\n  audio: a.wav\nstages: [unclosed\n")
    with pytest.raises(SpecError, match=r"spec.yaml:\d+:\d+: YAML syntax error"):
        load_spec(path)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("inptu: {audio: a.wav}\nstages: {audio_encoder: mel}\n", r"inptu: unknown key; did you mean 'input'"),
        ("stages: {audio_encoder: {plugin: mel, confg: {}}}\n", r"stages.audio_encoder.confg: unknown key; did you mean 'config'"),
        ("stages: {renderr: {plugin: x}}\n", r"stages.renderr: unknown key; did you mean 'renderer'"),
        ("stages: {audio_encoder: {config: {}}}\n", r"stages.audio_encoder.plugin: required"),
        ("stages: {}\n", r"stages: at least one stage"),
        ("- a\n- b\n", r"must be a mapping"),
    ],
)
def test_structure_errors_name_the_key_path(tmp_path, text, pattern):
    with pytest.raises(SpecError, match=pattern):
        load_spec(_write(tmp_path, text))


def test_misspelled_plugin_names_key_path_and_closest(tmp_path, wav_file):
    spec = parse_spec({"input": {"audio": str(wav_file)}, "stages": {"audio_encoder": {"plugin": "mell"}}}, tmp_path)
    with pytest.raises(PluginError, match=r"stages.audio_encoder.plugin: .*did you mean 'mel'"):
        validate_spec(spec, get_registry())


def test_config_keys_and_types_are_checked(tmp_path, wav_file):
    base = {"input": {"audio": str(wav_file)}}
    bad_key = parse_spec({**base, "stages": {"audio_encoder": {"plugin": "mel", "config": {"n_mel": 40}}}}, tmp_path)
    with pytest.raises(SpecError, match=r"stages.audio_encoder.config.n_mel: unknown key; did you mean 'n_mels'"):
        validate_spec(bad_key, get_registry())
    bad_type = parse_spec({**base, "stages": {"audio_encoder": {"plugin": "mel", "config": {"n_mels": "many"}}}}, tmp_path)
    with pytest.raises(SpecError, match=r"stages.audio_encoder.config.n_mels: expected an integer"):
        validate_spec(bad_type, get_registry())
    bad_value = parse_spec({**base, "stages": {"audio_encoder": {"plugin": "mel", "config": {"fmax": 20000.0}}}}, tmp_path)
    with pytest.raises(SpecError, match=r"stages.audio_encoder.config: .*fmax"):
        validate_spec(bad_value, get_registry())


def test_stages_that_do_not_connect(tmp_path, wav_file, motion_file):
    reg = get_registry()
    # motion input cannot feed an audio encoder
    spec = parse_spec({"input": {"motion": str(motion_file)}, "stages": {"audio_encoder": "mel"}}, tmp_path)
    with pytest.raises(SpecError, match="needs audio but the input gives motion"):
        validate_spec(spec, reg)
    # a gap: features straight into a renderer
    gap = parse_spec({"input": {"audio": str(wav_file)},
                      "stages": {"audio_encoder": "mel", "renderer": "landmark_sketch"}}, tmp_path)
    with pytest.raises((SpecError, PluginError), match="do not connect|landmark_sketch"):
        validate_spec(gap, reg)


def test_missing_input_file_and_wrong_output_suffix(tmp_path, wav_file):
    reg = get_registry()
    spec = parse_spec({"input": {"audio": "missing.wav"}, "stages": {"audio_encoder": "mel"}}, tmp_path)
    with pytest.raises(SpecError, match="input.audio: no such file"):
        validate_spec(spec, reg)
    spec = parse_spec({"input": {"audio": str(wav_file)}, "stages": {"audio_encoder": "mel"}, "output": "x.mp4"}, tmp_path)
    with pytest.raises(SpecError, match=r"output: .*must end in .npz"):
        validate_spec(spec, reg)


def test_output_as_a_mapping_with_paste_back(tmp_path, wav_file, motion_file):
    base = f"input: {{audio: {wav_file}, motion: {motion_file}}}\n"
    spec = load_spec(_write(tmp_path, base + "stages: {renderer: landmark_sketch}\n"
                            "output: {path: out/v.mp4, paste_back: true}\n"))
    assert spec.output == tmp_path.resolve() / "out" / "v.mp4" and spec.paste_back and spec.paste_dataset is None
    for text, pattern in (
        ("stages: {renderer: landmark_sketch}\noutput: {path: v.mp4, paste_bak: true}\n",
         r"output.paste_bak: unknown key; did you mean 'paste_back'"),
        ("stages: {renderer: landmark_sketch}\noutput: {path: v.mp4, paste_back: yes please}\n",
         r"output.paste_back: expected true or false"),
    ):
        with pytest.raises(SpecError, match=pattern):
            load_spec(_write(tmp_path, base + text))
    registry = get_registry()
    motion_only = load_spec(_write(tmp_path, f"input: {{audio: {wav_file}}}\nstages: {{audio_encoder: mel}}\n"
                                   "output: {path: f.npz, paste_back: true}\n"))
    with pytest.raises(SpecError, match="output.paste_back: pasting back needs a renderer"):
        validate_spec(motion_only, registry)
    no_dataset = load_spec(_write(tmp_path, base + "stages: {renderer: landmark_sketch}\n"
                                  f"output: {{path: v.mp4, paste_back: true, dataset: {tmp_path / 'nowhere'}}}\n"))
    with pytest.raises(SpecError, match="output.dataset: .*nowhere is not a dataset folder"):
        validate_spec(no_dataset, registry)


def test_relative_paths_in_stage_configs_resolve_against_the_spec_folder(tmp_path, wav_file, motion_file):
    
    sub = tmp_path / "specs"
    sub.mkdir()
    spec = load_spec(_write(sub, f"input: {{motion: {motion_file}}}\n"
                            "stages: {post_processor: {plugin: person_postprocess, config: "
                            "{person: ../data/me, pose: {mode: file, pose_file: poses.npz}}}}\noutput: m.npz\n"))
    config = structure(get_registry().get("post_processor", "person_postprocess").cls.Config,
                       spec.stages[0].config, "c", spec.base)
    assert config.person == tmp_path.resolve() / "data" / "me"
    assert config.pose.pose_file == sub.resolve() / "poses.npz"
    with pytest.raises(Exception, match="person"):  # built from the resolved path: not a dataset there
        get_registry().build(spec.stages[0], spec.base)


def _alias_bomb(levels: int = 9) -> str:
    """A YAML flow list whose aliases expand to 9**levels values (a few hundred bytes)."""
    items = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


@pytest.mark.parametrize("where", ["config", "output"])
def test_an_alias_bomb_is_refused_at_once_naming_its_anchor(tmp_path, where):
    bomb = _alias_bomb()
    if where == "config":
        text = f"input: {{audio: a.wav}}\nstages:\n  audio_encoder:\n    plugin: mel\n    config: {{n_mels: {bomb}}}\n"
    else:
        text = f"input: {{audio: a.wav}}\nstages: {{audio_encoder: mel}}\noutput: {{path: {bomb}}}\n"
    assert len(text) < 700
    with pytest.raises(SpecError, match=r"spec\.yaml:\d+:\d+: YAML aliases of the anchor here expand the spec past "):
        load_spec(_write(tmp_path, text))


def test_an_alias_bomb_in_a_training_config_is_refused_at_once(tmp_path):
    """`train --config` reads its YAML the way specs are read (before: 2.7 GB and 34 s to an
    out-of-memory error under a 4 GB ulimit, unbounded without one)."""
    config = _write(tmp_path, f"train: {{lr: {_alias_bomb()}}}\n", "c.yaml")
    proc = subprocess.run([sys.executable, "-m", "geneface", "train", "syncnet", "--data", str(tmp_path / "corpus"),
                           "--out", str(tmp_path / "run"), "--config", str(config), "-q"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert re.fullmatch(rf"error: {re.escape(str(config))}:1:\d+: YAML aliases of the anchor here expand the config "
                        r"past 100000 values or into itself; write the values out instead\n", proc.stderr), proc.stderr
    assert not (tmp_path / "run").exists()


def test_every_yaml_a_user_hands_us_is_read_by_the_one_safe_loader():
    """geneface.core.yaml_safe.load_yaml, which bounds aliases; never yaml.safe_load/yaml.load."""
    root = Path(geneface.__file__).parent.parent
    found = [f"{path.relative_to(root)}:{n}" for folder in ("geneface", "benchmarks", "plugins_contrib", "examples")
             for path in sorted((root / folder).rglob("*.py")) if "/tests/" not in str(path)
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"yaml\.(safe_)?load\(|yaml\.(full_|unsafe_)load\(", line)]
    assert found == []


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    with pytest.raises(SpecError, match=r"spec\.yaml:2:\d+: YAML aliases .* or into itself"):
        load_spec(_write(tmp_path, "input: {audio: a.wav}\nstages: {audio_encoder: &a {plugin: mel, config: {n_mels: *a}}}\n"))


def test_a_few_aliases_are_still_fine(tmp_path):
    spec = load_spec(_write(tmp_path, "input: {audio: a.wav}\nstages:\n"
                                      "  audio_encoder: {plugin: mel, config: {n_mels: &n 40, win_length: *n}}\n"))
    assert spec.stage("audio_encoder").config == {"n_mels": 40, "win_length": 40}
