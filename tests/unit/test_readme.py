"""The README stays true: it names the two commands and every setting."""

import pathlib

from config.docs import env_names
from config.settings import Settings

README = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_two_commands_come_first():
    assert README.index("make demo") < README.index("## How it works")
    assert "make test" in README


def test_every_setting_is_documented():
    missing = [
        env_names(n, f)[0] for n, f in Settings.model_fields.items() if env_names(n, f)[0] not in README
    ]
    assert missing == []
