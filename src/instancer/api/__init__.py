"""The HTTP edge: FastAPI app, thin handlers, schemas, one error table.

Imports use cases and domain only; never the store or a backend.
"""
