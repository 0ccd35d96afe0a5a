"""tpsl-guard core: the pure domain. Imports nothing of ours outside core, and no I/O library."""
