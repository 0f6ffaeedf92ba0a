"""The house page: one style sheet (``templates/style.css``) and the page templates that embed it.

Every HTML page gpuskew writes (the adherence report, the backtest and calibration reports) uses
the same style, read from one file.
"""

from __future__ import annotations

from importlib import resources
from string import Template


def house_style() -> str:
    """The CSS of every report page (the text between ``<style>`` and ``</style>``)."""
    return resources.files("gpuskew.reporting").joinpath("templates/style.css").read_text("utf-8")


def page_template(name: str) -> Template:
    """The page template ``templates/NAME`` (a :class:`string.Template`; ``$style`` takes
    :func:`house_style`)."""
    return Template(resources.files("gpuskew.reporting").joinpath(f"templates/{name}").read_text("utf-8"))


__all__ = ["house_style", "page_template"]
