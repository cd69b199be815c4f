"""Images: safe loading, the patch grid, patch features, parallel attention over the patches.

The pipeline, each step cacheable on its own::

    image = load_image(source)                 # upright RGB PIL image, full resolution
    feats = compute_features(image)            # PatchFeatures: DINOv2's patch grid + (rows*cols, d)   (slow part)
    feats = compute_features(image, features="handcrafted", patch=32)   # hand-made colour & texture
    res = attend_patches(image, feats, similarity="cosine", temperature=0.1, query=(3, 4))  # fast part
    res.to_png(cmap="viridis", opacity=0.6); res.to_json(); res.to_html(); res.save("overlay.png")

    res = analyze_image("photo.jpg", similarity="cosine", query=(3, 4))   # all of it in one call

One job per module:

* :mod:`~attnviz.image.load` — safe loading (:func:`load_image`, :func:`load_upload`, :func:`to_rgb`), limits;
* :mod:`~attnviz.image.grid` — the patch grid (:class:`PatchGrid`, :func:`patch_grid`), compute and display copies;
* :mod:`~attnviz.image.features` — :func:`compute_features`: DINOv2 or hand-made features, a :class:`FeatureExtractor`;
* :mod:`~attnviz.image.vit_features` — DINOv2's patch tokens and the one cached ViT forward (:func:`cached_vit`);
* :mod:`~attnviz.image.analysis` — :func:`attend_patches`, :func:`analyze_image`, :class:`ImageAnalysis`;
* :mod:`~attnviz.image.samples` — the shipped sample photos and :func:`synthetic_scene`.

Loading a pretrained network from disk is :func:`attnviz.loaders.extractor.load_feature_module` (one cache);
:func:`load_extractor` wraps it for a given input size.
"""

from __future__ import annotations

from .analysis import DEFAULT_OPACITY, VIEWS, ImageAnalysis, analyze_image, attend_patches
from .features import (
    COLOUR,
    FLOORS,
    HANDCRAFTED_FEATURES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ORIENTATION_BINS,
    TEXTURE,
    FeatureExtractor,
    PatchFeatures,
    compute_features,
    handcrafted_features,
    load_extractor,
    patch_features,
    rgb_to_lab,
    standardise,
)
from .grid import (
    DEFAULT_PATCHES_LONG_SIDE,
    MAX_COMPUTE_SIDE,
    MAX_PATCHES,
    MAX_PATCHES_LONG_SIDE,
    MIN_COMPUTE_CELL,
    PatchGrid,
    PatchSizeRange,
    compute_size,
    downscale,
    patch_grid,
    patch_label,
    patch_size_range,
    smallest_patch,
    thumbnail,
)
from .load import (MAX_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_JPEG_METADATA_BYTES, MAX_JPEG_METADATA_SEGMENTS, MAX_JPEG_SCANS,
                   SUPPORTED_FORMATS, UPLOAD_TYPES, configured_max_pixels, image_digest, jpeg_structure, load_image,
                   load_upload, to_rgb)
from .samples import SAMPLE_QUERY, SAMPLES, sample_path, synthetic_scene
from .vit_features import (DEFAULT_FEATURES, FEATURE_KINDS, VIT_RUNS, ViTCache, VisionModelMissing, cached_vit,
                           default_features, dinov2_features, fallback_notice, features_available, pixels_digest,
                           vit_key)

__all__ = [
    "SUPPORTED_FORMATS", "UPLOAD_TYPES", "MAX_IMAGE_PIXELS", "MAX_FILE_BYTES", "MAX_COMPUTE_SIDE", "MIN_COMPUTE_CELL",
    "MAX_PATCHES", "MAX_PATCHES_LONG_SIDE", "DEFAULT_PATCHES_LONG_SIDE", "VIEWS", "DEFAULT_OPACITY",
    "HANDCRAFTED_FEATURES", "ORIENTATION_BINS", "COLOUR", "TEXTURE", "FLOORS", "IMAGENET_MEAN", "IMAGENET_STD",
    "MAX_JPEG_SCANS", "MAX_JPEG_METADATA_SEGMENTS", "MAX_JPEG_METADATA_BYTES", "load_image", "load_upload",
    "configured_max_pixels", "jpeg_structure", "to_rgb", "image_digest", "compute_size", "downscale", "thumbnail", "PatchGrid", "patch_grid",
    "patch_label", "PatchSizeRange", "patch_size_range", "smallest_patch", "rgb_to_lab", "handcrafted_features",
    "standardise", "patch_features", "FeatureExtractor", "load_extractor", "PatchFeatures", "compute_features",
    "ImageAnalysis", "attend_patches", "analyze_image", "SAMPLES", "SAMPLE_QUERY", "sample_path", "synthetic_scene",
    "FEATURE_KINDS", "DEFAULT_FEATURES", "VIT_RUNS", "ViTCache", "VisionModelMissing", "features_available",
    "fallback_notice", "default_features", "dinov2_features", "cached_vit", "vit_key", "pixels_digest",
]
