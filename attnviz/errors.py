"""Typed errors: one class per failure kind, each with a message that says what to do.

The UI shows ``str(err)`` as one friendly sentence; the CLI prints it on stderr and exits 2.
"""

from __future__ import annotations


class AttnvizError(ValueError):
    """Base class of every error attnviz raises on purpose (bad input, missing model, ...)."""


class UnknownSimilarity(AttnvizError, KeyError):
    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = known
        super().__init__(f"Unknown similarity {name!r}: choose one of {', '.join(known)}.")

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return self.args[0]


class InvalidParameter(AttnvizError):
    """A number or option outside what makes sense (temperature <= 0, patch size 0, ...)."""


class ShapeMismatch(AttnvizError):
    """Tensors whose shapes cannot be attended together."""


class EmptyText(AttnvizError):
    def __init__(self, message: str = "The text is empty: type or paste some words first."):
        super().__init__(message)


class TextTooLong(AttnvizError):
    """Text above the documented limit (the page truncates instead; the library refuses)."""


class FileNotFound(AttnvizError, FileNotFoundError):
    """A path that names no file (an image, a text file, an attention dump): the message says which."""


class ModelNotFound(AttnvizError):
    """A model folder that does not exist or lacks tokenizer.json / weights."""


class ModelHasNoAttentions(AttnvizError):
    """A model that does not return attention tensors."""


class DeviceUnavailable(AttnvizError):
    """A device name this machine does not have (e.g. 'cuda' without a GPU)."""


class ImageError(AttnvizError):
    """Base class of image-input errors."""


class NotAnImage(ImageError):
    pass


class CorruptImage(ImageError):
    pass


class ImageTooLarge(ImageError):
    pass


class ImageTooSmall(ImageError):
    pass


class ImageFileNotFound(FileNotFound, NotAnImage):
    """An image path that names no file (a :class:`FileNotFound`, and still a :class:`NotAnImage`)."""
