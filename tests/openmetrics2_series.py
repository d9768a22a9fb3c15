"""Reads a JSON list of OpenMetrics 2.0 pages from stdin. Each page is checked against the
ABNF of the published spec (../shared/upstream/prometheus-docs, with the spec's own checker,
which needs the `abnf` package), one family at a time since the checker slows with the square
of the lines, then read into the series Prometheus would store from it: a number sample as
itself; a composite value as `_count` and `_sum` (`gcount` and `gsum` too), each quantile as
the family's series with a `quantile` label, each classic bucket as `_bucket` with `le`; a
native histogram (one with a `schema`) as its `_count`, `_sum` and `+Inf` bucket only, its
other buckets being compared on the text pages.

Prints a JSON list with, for each page, {"samples": [[name, labels, value bits]...],
"natives": [[name, labels]...], "families": typed family count} or {"error": reason}.
"""
import json
import os
import struct
import sys

UPSTREAM = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "upstream", "prometheus-docs")
sys.path.insert(0, os.path.join(UPSTREAM, "openmetrics-spec-tests"))
import check_openmetrics_spec as spec  # noqa: E402

GRAMMAR = spec.Grammar.load_grammar(
    grammar=spec.get_spec(os.path.join(UPSTREAM, "docs", "specs", "om", "open_metrics_spec_2_0.md")),
    strict=True,
)


def bits(value):
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def check_grammar(page):
    if not page.endswith("# EOF\n"):
        raise ValueError("the page does not end with # EOF")
    family = []
    for line in page[: -len("# EOF\n")].splitlines(keepends=True):
        if line.startswith("# TYPE ") and family:
            spec.Grammar.get("exposition").parse_all("".join(family) + "# EOF\n")
            family = []
        family.append(line)
    spec.Grammar.get("exposition").parse_all("".join(family) + "# EOF\n")


def read_quoted(text, at):
    """The escaped string in double quotes starting at `at`, and where it ends."""
    assert text[at] == '"', text[at:]
    out, at = [], at + 1
    while text[at] != '"':
        if text[at] == "\\":
            at += 1
            out.append("\n" if text[at] == "n" else text[at])
        else:
            out.append(text[at])
        at += 1
    return "".join(out), at + 1


def read_name(text, at):
    if text[at] == '"':
        return read_quoted(text, at)
    end = at
    while end < len(text) and (text[end].isalnum() or text[end] in "_:"):
        end += 1
    return text[at:end], end


def read_series(line):
    """The metric name, labels, and the rest of a sample line."""
    name, labels, at = None, {}, 0
    if line[0] != "{":
        name, at = read_name(line, 0)
    if at < len(line) and line[at] == "{":
        at += 1
        while line[at] != "}":
            key, at = read_name(line, at)
            if line[at] == "=":
                labels[key], at = read_quoted(line, at + 1)
            else:
                name = key
            if line[at] == ",":
                at += 1
        at += 1
    assert line[at] == " ", line
    return name, labels, line[at + 1 :]


def split_top(text):
    """`text` cut at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += {"[": 1, "]": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def pairs(listed):
    inner = listed[1:-1]
    return [item.split(":", 1) for item in inner.split(",")] if inner else []


def read_page(page):
    check_grammar(page)
    samples, natives, families = [], [], 0
    for line in page.splitlines():
        if line.startswith("# TYPE") and not line.endswith(" unknown"):
            families += 1
        if line.startswith("#"):
            continue
        name, labels, rest = read_series(line)
        if not rest.startswith("{"):
            samples.append([name, labels, bits(rest.split(" ")[0])])
            continue
        fields = dict(field.split(":", 1) for field in split_top(rest[1 : rest.index("}")]))
        count = fields.get("count", fields.get("gcount"))
        samples.append([name + "_count", labels, bits(count)])
        samples.append([name + "_sum", labels, bits(fields.get("sum", fields.get("gsum")))])
        native = "schema" in fields
        if native:
            natives.append([name, labels])
            samples.append([name + "_bucket", dict(labels, le="+Inf"), bits(count)])
        for quantile, value in pairs(fields.get("quantile", "[]")):
            samples.append([name, dict(labels, quantile=quantile), bits(value)])
        for le, value in pairs(fields.get("bucket", "[]")):
            if not native:
                samples.append([name + "_bucket", dict(labels, le=le), bits(value)])
    return {"samples": samples, "natives": natives, "families": families}


def main():
    results = []
    for page in json.load(sys.stdin):
        try:
            results.append(read_page(page))
        except Exception as error:  # any refusal of the page is the finding
            results.append({"error": "%s: %s" % (type(error).__name__, error)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
