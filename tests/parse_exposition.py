"""Parses a text-format page from stdin with prometheus_client, the independent parser.

Prints one line per family (F, name, type, help as JSON) and one per sample
(S, name, labels as JSON with sorted keys, repr of the value), tab-separated.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    out = []
    for family in text_string_to_metric_families(text):
        out.append("F\t%s\t%s\t%s" % (family.name, family.type, json.dumps(family.documentation, ensure_ascii=False)))
        for sample in family.samples:
            labels = json.dumps(dict(sorted(sample.labels.items())), ensure_ascii=False, separators=(",", ":"))
            out.append("S\t%s\t%s\t%r" % (sample.name, labels, sample.value))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
