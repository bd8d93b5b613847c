"""The pure core: challenge specs, instances, lifecycle rules and errors.

Imports the standard library and pydantic (for value validation only); never I/O.
"""
