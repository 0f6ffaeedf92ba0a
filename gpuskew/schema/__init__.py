"""Every table gpuskew reads or writes, declared once: columns, types, units and roles."""

from gpuskew.schema.tables import *  # noqa: F401,F403
