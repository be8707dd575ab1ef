#!/usr/bin/env python3
"""Print the values table of helm/hookseal/README.md from the charts' values.yaml files.

Each row is a key (dotted path), its default and its description: the comment lines directly
above the key (prose comments, "# text"; indented commented-out examples are skipped) and the
comment at the end of its line. The application chart's keys come first, then `proxy.*` from the
library chart. Maps with keys of their own get a row when they carry a comment, and their keys
get rows; lists, empty maps and scalars are one row each.

    python3 helm/ci/values-table.py            # print the table
    python3 helm/ci/values-table.py --write    # replace the table in helm/hookseal/README.md

The chart tests fail when the README's table differs from this output.
"""

import json
import re
import sys
from pathlib import Path

HELM = Path(__file__).resolve().parent.parent
README = HELM / "hookseal" / "README.md"
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):(?:\s+(.*?))?\s*$")


def split_comment(rest):
    """'value  # comment' -> (value, comment), minding quotes."""
    quote = None
    for i, c in enumerate(rest):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or rest[i - 1] in " \t"):
            return rest[:i].rstrip(), rest[i + 1:].strip()
    return rest.rstrip(), ""


def rows(path, prefix="", skip=()):
    out = []
    stack = []  # (indent, key)
    notes = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            notes = []
            continue
        if stripped.startswith("#"):
            # Prose is "# text"; a commented-out example ("#  - name: …") is skipped without
            # ending the description above it.
            text = stripped[1:]
            if text.startswith(" ") and not text.startswith("  ") and text.strip():
                notes.append(text.strip())
            continue
        m = KEY.match(line)
        if not m or stripped.startswith("- "):
            notes = []
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3) or ""
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if stack and stack[-1][1] is None:  # inside a list or a map shown as one value
            notes = []
            continue
        dotted = ".".join([k for _, k in stack] + [key])
        value, trailing = split_comment(rest)
        # A key with nothing after it opens a map (or a block list) below.
        nxt = next((ln for ln in lines[n + 1:] if ln.strip() and not ln.strip().startswith("#")), "")
        opens = value == "" and nxt and (len(nxt) - len(nxt.lstrip())) > indent
        desc = " ".join(notes + ([trailing] if trailing else []))
        notes = []
        if dotted.split(".")[0] in skip:
            stack.append((indent, None))
            continue
        if opens and not nxt.lstrip().startswith("- ") and key not in OPAQUE:
            if desc:
                out.append((prefix + dotted, "", desc))
            stack.append((indent, key))
            continue
        if opens:
            default = block_default(lines, n, indent)
            stack.append((indent, None))
        else:
            default = value if value else '""'
        out.append((prefix + dotted, default, desc))
    return out


# Maps shown as one value (Kubernetes objects, label sets), not key by key.
OPAQUE = {"securityContext", "podSecurityContext", "resources", "labels", "annotations",
          "httpsBackendAnnotations", "issuerRef", "privateKey"}


def block_default(lines, n, indent):
    """The YAML block under line n, as compact JSON (via a tiny YAML subset: PyYAML if present)."""
    block = []
    for ln in lines[n + 1:]:
        if ln.strip() and not ln.strip().startswith("#") and len(ln) - len(ln.lstrip()) <= indent:
            break
        block.append(ln)
    try:
        import yaml
        value = yaml.safe_load("\n".join(block))
        return json.dumps(value, separators=(", ", ": "))
    except ImportError:
        return "(see values.yaml)"


def table():
    items = rows(HELM / "hookseal" / "values.yaml", skip=("proxy",))
    items += rows(HELM / "hookseal-lib" / "values.yaml", prefix="proxy.")
    out = ["| key | default | description |", "|---|---|---|"]
    for key, default, desc in items:
        default = default.replace("|", "\\|")
        desc = desc.replace("|", "\\|")
        out.append(f"| `{key}` | `{default}` | {desc} |" if default else f"| `{key}` | | {desc} |")
    return "\n".join(out) + "\n"


def main():
    t = table()
    if "--write" in sys.argv:
        text = README.read_text()
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        README.write_text(f"{head}{START}\n{t}{END}{tail}")
    else:
        sys.stdout.write(t)


if __name__ == "__main__":
    main()
