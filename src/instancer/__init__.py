"""instancer: per-team challenge containers for CTF events."""

__version__ = "0.1.0"
