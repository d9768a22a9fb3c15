"""Validates custom resources against the published CustomResourceDefinitions, strictly.

Usage: validate_crd.py CRD.yaml... < objects.json (a JSON list of objects)

Each object is checked against `spec.versions[].schema.openAPIV3Schema` of the CRD whose group
and kind it names, for its version, with Python's jsonschema. As the API server's strict field
validation does (`kubectl apply --validate=strict`), a field the schema does not declare is an
error: every object schema that lists its properties, and neither allows others nor preserves
unknown fields, is closed. Prints one line per problem and exits 1 if there is any.
"""
import json
import sys

import jsonschema
import yaml


def closed(schema):
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    return schema


def main():
    schemas = {}
    for path in sys.argv[1:]:
        with open(path) as file:
            crd = yaml.safe_load(file)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            api_version = "%s/%s" % (group, version["name"])
            schemas[(api_version, kind)] = closed(version["schema"]["openAPIV3Schema"])
    problems = []
    for index, obj in enumerate(json.load(sys.stdin)):
        where = "%s %s" % (obj.get("kind"), obj.get("metadata", {}).get("name"))
        schema = schemas.get((obj.get("apiVersion"), obj.get("kind")))
        if schema is None:
            problems.append("%s: no CRD for %s" % (where, obj.get("apiVersion")))
            continue
        validator = jsonschema.Draft7Validator(schema)
        for error in validator.iter_errors(obj):
            path = "/".join(str(p) for p in error.absolute_path)
            problems.append("%s: %s: %s" % (where, path, error.message))
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
