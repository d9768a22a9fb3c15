"""Reads a JSON list of pages ({"format": "text" or "openmetrics", "page": ...}) from stdin and
parses each with prometheus_client's parser for its format, the independent reader.

Prints a JSON list with, for each page, either its samples as [name, labels, value bits] (the
value as the 64-bit pattern of the float, so that it compares exactly) or {"error": reason}.
"""
import json
import struct
import sys

from prometheus_client import parser as text_format
from prometheus_client.openmetrics import parser as openmetrics


def bits(value):
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def family_blocks(page):
    """The page cut where each family's `# HELP` and `# TYPE` lines start."""
    blocks, block, header_name = [], [], None
    for line in page.splitlines(keepends=True):
        parts = line.split(" ")
        if line.startswith("# HELP ") or (line.startswith("# TYPE ") and parts[2] != header_name):
            if block:
                blocks.append("".join(block))
            block = []
        header_name = parts[2] if line.startswith("# HELP ") else None
        block.append(line)
    if block:
        blocks.append("".join(block))
    return blocks


def text_samples(page):
    """The text parser renames the samples of a counter family not named `_total` by adding
    `_total` (its OpenMetrics model); each family is read on its own so that the page's own
    names are what is compared."""
    out = []
    for block in family_blocks(page):
        declared = None
        for line in block.splitlines():
            parts = line.split(" ")
            if parts[:2] == ["#", "TYPE"] and parts[3:] == ["counter"]:
                declared = parts[2].strip("\"")  # a quoted UTF-8 name
        for family in text_format.text_string_to_metric_families(block):
            for sample in family.samples:
                name = sample.name
                if declared == family.name and name == declared + "_total":
                    name = declared
                out.append([name, dict(sample.labels), bits(sample.value)])
    return out


def samples(entry):
    if entry["format"] == "text":
        return text_samples(entry["page"])
    out = []
    for family in openmetrics.text_string_to_metric_families(entry["page"]):
        for sample in family.samples:
            out.append([sample.name, dict(sample.labels), bits(sample.value)])
    return out


def main():
    results = []
    for entry in json.load(sys.stdin):
        try:
            results.append(samples(entry))
        except Exception as error:  # any refusal of the page is the finding
            results.append({"error": "%s: %s" % (type(error).__name__, error)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
