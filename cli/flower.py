"""`tpsl flower`: Celery's monitoring UI, started only behind well-formed basic-auth credentials.

Flower gives whoever reaches it full control of the tasks (a forged task argument becomes a real
order), and left to itself it accepts an empty `--basic-auth=` (then `Authorization: Basic =` gets
in) and splits `FLOWER_BASIC_AUTH` at commas. This wrapper reads `FLOWER_BASIC_AUTH` itself, refuses
to start unless it is `user:password` (a user, a password of at least 8 characters, no control
characters), takes it out of the environment, and hands it to Flower in this process as one
credential: never on a command line, never split.
"""

from __future__ import annotations

import os

import typer

from cli.common import fail

ENV = "FLOWER_BASIC_AUTH"
MIN_PASSWORD = 8


def parse_basic_auth(value: str | None) -> str:
    """The `user:password` credential, checked; ValueError names the problem (never the value)."""
    if value is None or not value.strip():
        raise ValueError("unset or empty: set it to user:password")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("contains a control character")
    user, sep, password = value.partition(":")
    if not sep:
        raise ValueError("must be user:password (no ':' found)")
    if not user.strip() or user != user.strip():
        raise ValueError("the user name is empty or has surrounding spaces")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
    return value


def flower_cmd(
    address: str = typer.Option(
        "127.0.0.1", "--address", help="Interface to listen on (0.0.0.0: every one)."
    ),
    port: int = typer.Option(
        5555, "--port", min=1, max=65535, envvar="FLOWER_PORT", help="TCP port (env FLOWER_PORT)."
    ),
) -> None:
    """Serve Flower (Celery's monitoring UI) behind basic auth from FLOWER_BASIC_AUTH=user:password.

    Refuses to start without a well-formed credential. The credential never goes on a command line
    and is not split at commas.
    """
    from config.settings import get_settings

    secret = get_settings().flower_basic_auth
    try:
        credential = parse_basic_auth(secret.get_secret_value() if secret is not None else None)
    except ValueError as exc:
        fail(ENV, str(exc))
    from config.logging import register_secret

    register_secret(credential)
    register_secret(credential.partition(":")[2])
    for name in (ENV, f"TPSL_{ENV}"):  # Flower would read (and split) it from the environment
        os.environ.pop(name, None)

    import flower.options  # noqa: F401 - defines Flower's options
    from tornado.options import options

    from tasks.app import default_app

    celery_app = default_app()
    options.basic_auth = [credential]
    # an empty config file: a stray ./flowerconfig.py cannot replace the credential
    celery_app.start(["flower", f"--address={address}", f"--port={port}", f"--conf={os.devnull}"])
