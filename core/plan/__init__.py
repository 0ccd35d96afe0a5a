"""Monitor plans: parsing a request into a `Plan`, and the rules every Plan must meet.

- `core.plan.parse` (raw input → Plan): `parse_request`, `parse_plan`, `MonitorRequest`. Errors are
  `PlanInvalid(field, problem)` naming the first field that is wrong, in document order.
- `core.plan.rules` (rules on a Plan): `validate_plan`, `recheck_plan`, `check_adoption`,
  `resolve_position_idx`, and the single checks the parser also runs.

The names below are the package's public face; import them from `core.plan`.
"""

from core.plan.parse import (
    DEFAULT_FEE_BUFFER,
    PLAN_FIELDS,
    REQUEST_FIELDS,
    MonitorRequest,
    parse_plan,
    parse_request,
)
from core.plan.rules import (
    MAX_FEE_BUFFER,
    MAX_LEVELS,
    check_adoption,
    recheck_plan,
    resolve_position_idx,
    validate_plan,
)

__all__ = [
    "DEFAULT_FEE_BUFFER",
    "MAX_FEE_BUFFER",
    "MAX_LEVELS",
    "PLAN_FIELDS",
    "REQUEST_FIELDS",
    "MonitorRequest",
    "check_adoption",
    "parse_plan",
    "parse_request",
    "recheck_plan",
    "resolve_position_idx",
    "validate_plan",
]
