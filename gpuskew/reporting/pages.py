"""The house page: one style sheet (``templates/style.css``) and the page templates that embed it.

Every HTML page gpuskew writes (the adherence report, the scenario page, the backtest and
calibration reports) uses the same style, read from one file, and the same chart helpers: matplotlib
loaded on first use (:func:`matplotlib_figure`), PNGs saved without a timestamp (:func:`save_png`,
byte-identical reruns), embedded in the page (:func:`img_tag`), named by :func:`safe_name`.
"""

from __future__ import annotations

import base64
import html
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from gpuskew.errors import GpuskewError


def house_style() -> str:
    """The CSS of every report page (the text between ``<style>`` and ``</style>``)."""
    return resources.files("gpuskew.reporting").joinpath("templates/style.css").read_text("utf-8")


def page_template(name: str) -> Template:
    """The page template ``templates/NAME`` (a :class:`string.Template`; ``$style`` takes
    :func:`house_style`)."""
    return Template(resources.files("gpuskew.reporting").joinpath(f"templates/{name}").read_text("utf-8"))


def matplotlib_figure() -> tuple[Any, Any]:
    """``(Figure, FigureCanvasAgg)`` of matplotlib (imported here, on first use: no pyplot, no
    display); a missing matplotlib is a :class:`GpuskewError` saying what to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise GpuskewError("the charts need matplotlib (a dependency of gpuskew): pip install matplotlib") from exc
    return Figure, FigureCanvasAgg


def save_png(fig: Any, canvas_cls: Any, path: str | Path, dpi: int = 110) -> None:
    """``fig`` as a PNG at ``path`` (no Software/time metadata: the same figure gives the same bytes)."""
    canvas_cls(fig)
    fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})


def img_tag(path: str | Path, alt: str) -> str:
    """A ``<figure>`` embedding the PNG at ``path`` (base64: the page is self-contained)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def safe_name(text: str) -> str:
    """A file-name part for ``text``: letters, digits, ``-_.`` kept, anything else written as
    ``~XX`` (its UTF-8 bytes in hex), so two different names never give the same file
    (``A/B`` -> ``A~2FB``, ``A_B`` -> ``A_B``)."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else
                   "".join(f"~{b:02X}" for b in c.encode("utf-8")) for c in text)


__all__ = ["house_style", "page_template", "matplotlib_figure", "save_png", "img_tag", "safe_name"]
