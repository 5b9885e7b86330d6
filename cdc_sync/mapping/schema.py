"""The JSON Schema of mappings.yaml, generated from the models, for editors (pure).

Regenerate the committed copy with
`python -m cdc_sync.mapping.schema > cdc_sync/mapping/mapping.schema.json`; a test fails when
the copy and the models disagree. Editors with the YAML language server pick it up from a first
line `# yaml-language-server: $schema=<path or URL of mapping.schema.json>`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from cdc_sync.mapping import base, model

SCHEMA_PATH = Path(__file__).with_name("mapping.schema.json")
"""Where the generated schema is committed (and shipped as package data)."""

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _MappingJsonSchema(GenerateJsonSchema):
    """Also accepts the text shorthands the models' before-validators expand."""

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        inner = super().function_before_schema(schema)
        function = schema["function"]["function"]
        if function is model._field_shorthand:
            text = {"type": "string", "description": "Short for {column: <this text>}."}
            return {"anyOf": [text, inner]}
        if function is base._as_list:
            text = {"type": "string", "description": "One column name."}
            return {"anyOf": [text, inner]}
        return inner


def mapping_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of mappings.yaml."""
    generated = model.MappingSpec.model_json_schema(schema_generator=_MappingJsonSchema)
    return {
        "$schema": _DIALECT,
        **generated,
        "title": "cdc-sync mappings.yaml",
        "description": (
            "How cdc-sync reads a shop's database into Metrilo records; "
            "documented key by key in docs/mappings.md."
        ),
    }


def write(stream: TextIO) -> None:
    """Write the schema as stable, indented JSON (the form committed to the repository)."""
    stream.write(json.dumps(mapping_json_schema(), indent=2, ensure_ascii=False))
    stream.write("\n")


def main() -> None:
    write(sys.stdout)


if __name__ == "__main__":
    main()
