"""Every table gpuskew reads or writes, declared once: columns, types, units and roles.

:mod:`gpuskew.schema.columns` says how a table is declared (columns with roles key, tag,
measure, attr; a :class:`TableSpec` finds a concrete table's tag and key columns);
:mod:`gpuskew.schema.tables` declares every input and output table.
"""

from gpuskew.schema.columns import ROLES, is_string_type  # noqa: F401
from gpuskew.schema.tables import *  # noqa: F401,F403
