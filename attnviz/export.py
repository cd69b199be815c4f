"""The one export helper: a result written to a file chosen by the file's suffix.

    save(result, "attention.png")    result.to_png(**style)     bytes
    save(result, "attention.html")   result.to_html(**style)    one standalone page (also .htm)
    save(result, "attention.json")   result.to_json(**json_options)
    save(result, "attention.csv")    result.to_csv(**csv_options)

``TextAnalysis.save``, ``ModelAttention.save`` and ``ImageAnalysis.save`` all call :func:`save`, so every
result saves the same way and fails the same way: an unknown suffix is :class:`InvalidParameter`, a
folder that does not exist :class:`FileNotFound`, any other write error :class:`InvalidParameter`
saying why. :func:`result_html` is a result's page: its ``to_html``, or (a result with only a notebook view, such as
:class:`attnviz.trace.HeadTrace`) that view on a page. :func:`html_page` is the page every ``to_html`` returns: inline CSS only, no script, no
remote resource, and a Content-Security-Policy that allows nothing else (images only as ``data:``).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from .errors import FileNotFound, InvalidParameter

#: the suffixes :func:`save` writes (lower case)
SUFFIXES = (".png", ".html", ".htm", ".json", ".csv")
#: what a saved page allows a browser to load: inline styles and ``data:`` images, nothing else
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def html_page(body: str, title: str = "attnviz") -> str:
    """A complete HTML document around an already-escaped ``body`` (``title`` is escaped here)."""
    return (
        "<!DOCTYPE html>\n<html lang=\"und\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n</head>\n"
        "<body style=\"max-width:64em;margin:2em auto;padding:0 1em;color:#111;background:#fff;"
        "font-family:system-ui,-apple-system,'Segoe UI',sans-serif\">\n"
        f"<h1 style=\"font-size:1.3em\">{html.escape(title)}</h1>\n{body}\n"
        "<p style=\"color:#777;font-size:0.8em\">Made with attnviz.</p>\n"
        "</body>\n</html>\n"
    )


def result_html(result, **style) -> str:
    """``result.to_html(**style)``, or its notebook view (``_repr_html_``, already escaped) on :func:`html_page`,
    in a box that scrolls sideways rather than widening a phone's page."""
    if hasattr(result, "to_html"):
        return result.to_html(**style)
    if hasattr(result, "_repr_html_"):
        if style:
            raise InvalidParameter(f"A {type(result).__name__} page takes no drawing options, got {', '.join(style)}.")
        return html_page(f'<div style="overflow-x:auto;max-width:100%">{result._repr_html_()}</div>',
                         _page_title(result))
    raise InvalidParameter(f"A {type(result).__name__} has no HTML view: save it as .json instead.")


def _page_title(result) -> str:
    """A readable page title for a result shown by its notebook view; the class name for any other."""
    from .trace import HeadTrace, SwapResult

    if isinstance(result, HeadTrace):
        return f"attnviz: layer {result.layer}, head {result.head} of {result.model_name}"
    if isinstance(result, SwapResult):
        return f"attnviz: similarity swap, layer {result.layer}"
    return f"attnviz: {type(result).__name__}"


def save(result, path: str | os.PathLike, *, json_options: dict | None = None, csv_options: dict | None = None,
         png: dict | None = None, page: dict | None = None, **style) -> Path:
    """Write ``result`` to ``path`` by its suffix (:data:`SUFFIXES`); returns the path written.

    ``style`` goes to both pictures (``to_png`` and ``to_html``); ``png`` / ``page`` to one of them only;
    ``json_options`` / ``csv_options`` to ``to_json`` / ``to_csv``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".png":
        data: bytes | str = result.to_png(**style, **(png or {}))
    elif suffix in (".html", ".htm"):
        data = result_html(result, **style, **(page or {}))
    elif suffix == ".json":
        data = result.to_json(**(json_options or {}))
    elif suffix == ".csv":
        data = result.to_csv(**(csv_options or {}))
    else:
        raise InvalidParameter(f"Cannot save as {suffix or 'a file without a suffix'}: use .png, .html, .json or .csv.")
    if not p.parent.is_dir():
        raise FileNotFound(f"Cannot write {os.fspath(p)!r}: the folder {os.fspath(p.parent)!r} does not exist.")
    try:
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data, encoding="utf-8")
    except OSError as err:
        raise InvalidParameter(f"Cannot write {os.fspath(p)!r}: {err.strerror or err}.") from None
    return p


__all__ = ["CONTENT_SECURITY_POLICY", "SUFFIXES", "html_page", "result_html", "save"]
