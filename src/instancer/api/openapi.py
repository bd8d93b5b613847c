"""The OpenAPI document, with the challenge spec declared where FastAPI cannot infer it.

PUT /challenges/{id} takes a spec in its long form (`containers: [...]`) or its short form
(`image`, `ports`, ... at the top level); the handler validates it with the domain's own
validator, so FastAPI sees a free-form object. This fills in the real schema."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..domain.spec import ChallengeSpec

_REF = "#/components/schemas/{model}"
_SHORT_FORM_SKIP = ("containers",)
# The short form's one container is named `main` and has no other container to depend on.
_CONTAINER_ONLY = ("name", "depends_on")


def spec_schemas() -> dict[str, Any]:
    """Component schemas: the stored spec, and the document a PUT accepts (either form)."""
    stored = ChallengeSpec.model_json_schema(ref_template=_REF)
    defs: dict[str, Any] = stored.pop("$defs", {})
    long_form = {**stored, "required": [r for r in stored.get("required", []) if r != "id"]}
    container = defs["Container"]["properties"]
    short_form = {
        "type": "object",
        "additionalProperties": False,
        "required": ["image"],
        "properties": {
            **{k: v for k, v in stored["properties"].items() if k not in _SHORT_FORM_SKIP},
            **{k: v for k, v in container.items() if k not in _CONTAINER_ONLY},
        },
    }
    return {**defs, "ChallengeSpec": stored, "ChallengeSpecDocument": {"anyOf": [long_form, short_form]}}


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        document.setdefault("components", {}).setdefault("schemas", {}).update(spec_schemas())
        put = document["paths"]["/api/v1/challenges/{challenge_id}"]["put"]
        put["requestBody"]["content"]["application/json"]["schema"] = {
            "$ref": "#/components/schemas/ChallengeSpecDocument"
        }
        stored = {"application/json": {"schema": {"$ref": "#/components/schemas/ChallengeSpec"}}}
        for status in ("200", "201"):
            put["responses"].setdefault(status, {"description": "The stored spec."})["content"] = stored
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
