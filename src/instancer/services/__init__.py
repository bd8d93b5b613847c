"""Use cases: start, extend, revert, stop, reap, reconcile. One transaction each.

Depend on the domain and its ports only; never on SQLAlchemy, docker or FastAPI.
"""
