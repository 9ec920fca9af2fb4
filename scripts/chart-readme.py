#!/usr/bin/env python3
"""Regenerates the values table of charts/video-resizer/README.md (what `helm show readme`
prints) from values.yaml: every value, its default, and its `# --` comment. A value is a leaf
unless values.schema.json describes it as an object with named properties. The test
crds/tests/chart.rs fails when a value is missing from the README.
Usage: python3 scripts/chart-readme.py   (needs python3-yaml)"""
import json
import os
import re
import sys

import yaml

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "charts", "video-resizer")
BEGIN, END = "<!-- values:begin -->", "<!-- values:end -->"


def comments(lines):
    """`# --` comments by dotted key path."""
    out, stack, pending = {}, [], []
    for line in lines:
        if not line.strip():
            pending = []
            continue
        m = re.match(r"^(\s*)# -- (.*)$", line)
        if m:
            pending = [m.group(2)]
            continue
        m = re.match(r"^(\s*)#\s?(.*)$", line)
        if m:
            if pending:
                pending.append(m.group(2))
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if m:
            indent = len(m.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m.group(2)))
            if pending:
                out[".".join(k for _, k in stack)] = " ".join(pending)
            pending = []
    return out


def rows(values, schema, root, path, notes):
    for key, value in values.items():
        p = f"{path}.{key}" if path else key
        sub = schema.get("properties", {}).get(key, {})
        if "$ref" in sub:
            sub = root["definitions"][sub["$ref"].split("/")[-1]]
        if isinstance(value, dict) and value and "properties" in sub:
            yield from rows(value, sub, root, p, notes)
        else:
            note = notes.get(p, "").replace("|", "\\|")
            yield f"| `{p}` | `{json.dumps(value)}` | {note} |"


def main():
    text = open(os.path.join(CHART, "values.yaml")).read()
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    table = ["| value | default | description |", "| --- | --- | --- |"]
    table += rows(yaml.safe_load(text), schema, schema, "", comments(text.split("\n")))
    readme_path = os.path.join(CHART, "README.md")
    readme = open(readme_path).read()
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    open(readme_path, "w").write(head + BEGIN + "\n" + "\n".join(table) + "\n" + END + tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
