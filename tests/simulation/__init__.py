"""A deterministic simulator of the guard against an adversarial exchange (FoundationDB/TigerBeetle
style): one seed is one reproducible run. See `world.py` for what it does and `invariants.py` for
what it asserts; `python -m tests.simulation` soaks many seeds or replays one."""
