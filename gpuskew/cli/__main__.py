"""python -m gpuskew.cli: the gpuskew command line."""

from gpuskew.cli import entry_point

entry_point()
