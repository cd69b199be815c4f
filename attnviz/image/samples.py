"""The sample photos shipped in ``attnviz/assets`` and a deterministic synthetic scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidParameter

#: the sample photos shipped in attnviz/assets (credits in attnviz/assets/LICENSES.md)
SAMPLES = {
    "Summer Palace, Beijing (photo)": (
        "china.jpg", "Sky, a temple, trees and a lake: click the sky and see it attend to sky."),
    "Dahlia (photo)": (
        "flower.jpg", "An orange flower on dark leaves: click the flower and see it attend to the flower."),
    "Shapes (synthetic)": (
        "shapes.png", "Red discs and yellow squares on sky and grass, drawn by attnviz.image.synthetic_scene."),
}

#: where each sample's first query patch sits, as (y, x) fractions of the picture (its point of interest)
SAMPLE_QUERY = {"china.jpg": (0.1, 0.2), "flower.jpg": (0.45, 0.5), "shapes.png": (0.25, 0.18)}


def sample_path(name: str) -> Path:
    """Path of a sample by its :data:`SAMPLES` name or file name."""
    from importlib.resources import files

    fname = SAMPLES[name][0] if name in SAMPLES else name
    if fname not in {f for f, _ in SAMPLES.values()}:
        raise InvalidParameter(f"Unknown sample {name!r}: choose one of {', '.join(SAMPLES)}.")
    return Path(str(files("attnviz.assets").joinpath(fname)))


def synthetic_scene(width: int = 480, height: int = 320, seed: int = 4) -> np.ndarray:
    """A deterministic test picture ``(height, width, 3)`` uint8: a sky gradient over textured grass,
    three red discs and two yellow squares (alike shapes should attend to each other)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (1 - y) * np.array([110, 160, 230]) + y * np.array([190, 215, 245])
    img = np.broadcast_to(sky, (height, width, 3)).copy()
    horizon = int(height * 0.55)
    grass = np.array([70, 140, 60]) + rng.normal(0, 12, (height - horizon, width, 1))
    img[horizon:] = grass
    yy, xx = np.mgrid[0:height, 0:width]
    r = max(4, round(min(width, height) * 0.09))
    for cx, cy in ((0.18, 0.25), (0.62, 0.2), (0.4, 0.78)):
        img[(xx - cx * width) ** 2 + (yy - cy * height) ** 2 <= r * r] = (200, 40, 40)
    s = max(4, round(min(width, height) * 0.16))
    for cx, cy in ((0.85, 0.3), (0.75, 0.75)):
        x0, y0 = round(cx * width - s / 2), round(cy * height - s / 2)
        img[max(0, y0):y0 + s, max(0, x0):x0 + s] = (240, 200, 40)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


__all__ = ["SAMPLES", "SAMPLE_QUERY", "sample_path", "synthetic_scene"]
