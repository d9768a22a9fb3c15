"""Parses a text-format page from stdin with prometheus_client, the independent parser;
with --openmetrics, an OpenMetrics page with its OpenMetrics parser.

Prints one line per family (F, name, type, help as JSON) and one per sample
(S, name, labels as JSON with sorted keys, repr of the value), tab-separated.
"""
import json
import sys

from prometheus_client.openmetrics import parser as openmetrics
from prometheus_client import parser as text_format


def main():
    text = sys.stdin.read()
    parser = openmetrics if "--openmetrics" in sys.argv else text_format
    out = []
    for family in parser.text_string_to_metric_families(text):
        out.append("F\t%s\t%s\t%s" % (family.name, family.type, json.dumps(family.documentation, ensure_ascii=False)))
        for sample in family.samples:
            labels = json.dumps(dict(sorted(sample.labels.items())), ensure_ascii=False, separators=(",", ":"))
            line = "S\t%s\t%s\t%r" % (sample.name, labels, sample.value)
            exemplar = getattr(sample, "exemplar", None)
            if exemplar is not None:
                line += "\tE\t%s\t%r" % (json.dumps(exemplar.labels, sort_keys=True), exemplar.value)
            out.append(line)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
