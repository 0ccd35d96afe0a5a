"""The configuration table of the README, generated from `Settings` (one source of truth).

python -m config.docs      # prints the Markdown table
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from config.settings import Settings


def env_names(name: str, field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return [str(c) for c in choices]
    return [f"TPSL_{name.upper()}"]


def _default(field: FieldInfo) -> str:
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):  # a default is not a secret
        value = value.get_secret_value()
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def table() -> str:
    rows = ["| variable | default | what (unit) |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        env = env_names(name, field)[0]
        desc = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env}` | `{_default(field)}` | {desc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
