#!/usr/bin/env python3
"""Structure limits of the workspace's production code (run by scripts/test.sh).

- No source file over 600 lines of production code (tests: `tests.rs`, `tests/`, and
  everything from a top-level `#[cfg(test)]` on, are not counted).
- No function over 120 lines.
- No import cycle between sibling modules: for every module, the graph of which of its child
  modules refer to which (`crate::…`, `super::…`, `self::…` paths) has no cycle.

Prints each violation and exits 1 if there is any; `--report` prints the largest files and
functions too. Text-level (no compiler): strings, chars and comments are blanked before
braces and paths are read.
"""
import os
import re
import sys

MAX_FILE = 600
MAX_FN = 120
# e2e is the test suites' support code: tests, not production code.
CRATES = ["crds", "dataplane", "operator", "operator/core", "operator/verdict", "cli"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blank(src):
    """Source with comments, strings and char literals replaced by spaces (lines kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def production_part(text):
    lines = text.split("\n")
    for k, line in enumerate(lines):
        if line.startswith("#[cfg(test)]"):
            return "\n".join(lines[:k])
    return text


def source_files(crate):
    src = os.path.join(ROOT, crate, "src")
    for d, dirs, files in os.walk(src):
        dirs[:] = [x for x in dirs if x != "tests"]
        for f in files:
            if f.endswith(".rs") and f != "tests.rs":
                yield os.path.join(d, f)


def module_path(crate, path):
    rel = os.path.relpath(path, os.path.join(ROOT, crate, "src"))[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def functions(code):
    """(name, first line, line count) of every fn with a body."""
    found = []
    for m in re.finditer(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", code):
        # The body starts at the first `{` after the signature (skip `;` = no body).
        i = m.end()
        depth_paren = 0
        while i < len(code):
            c = code[i]
            if code.startswith("->", i):
                i += 2
                continue
            if c in "(<[":
                depth_paren += 1
            elif c in ")>]":
                depth_paren -= 1
            elif c == ";" and depth_paren <= 0:
                i = -1
                break
            elif c == "{" and depth_paren <= 0:
                break
            i += 1
        if i < 0 or i >= len(code):
            continue
        depth, j = 0, i
        while j < len(code):
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        start = code.count("\n", 0, m.start()) + 1
        end = code.count("\n", 0, j) + 1
        found.append((m.group(1), start, end - start + 1))
    return found


def is_module(crate, parts):
    base = os.path.join(ROOT, crate, "src", *parts)
    return bool(parts) and (os.path.isfile(base + ".rs") or os.path.isfile(os.path.join(base, "mod.rs")))


def resolve(crate, here, path):
    """The module a `crate::…`/`super::…`/`self::…` path lands in (longest module prefix)."""
    segs = path.split("::")
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    else:
        base = list(here)
        rest = segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super" and base:
                base.pop()
            rest = rest[1:]
        base = tuple(base)
    target = base
    for s in rest:
        if is_module(crate, target + (s,)):
            target = target + (s,)
        else:
            break
    return target


def add_edge(sibling_edges, crate, here, target):
    """Records `here` → `target` as an edge between the children of their deepest common
    ancestor (nothing when one contains the other)."""
    k = 0
    while k < min(len(here), len(target)) and here[k] == target[k]:
        k += 1
    if k < len(here) and k < len(target):
        sibling_edges.setdefault((crate, here[:k]), {}).setdefault(here[k], set()).add(target[k])


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    report = "--report" in sys.argv
    problems, sizes, fns = [], [], []
    sibling_edges = {}  # (crate, parent) -> {child: {child}}
    for crate in CRATES:
        for path in source_files(crate):
            rel = os.path.relpath(path, ROOT)
            text = open(path, encoding="utf-8").read()
            code = blank(production_part(text))
            n = code.count("\n") + 1
            sizes.append((n, rel))
            if n > MAX_FILE:
                problems.append(f"{rel}: {n} lines of production code (limit {MAX_FILE})")
            for name, line, length in functions(code):
                fns.append((length, f"{rel}:{line} {name}"))
                if length > MAX_FN:
                    problems.append(f"{rel}:{line}: fn {name} is {length} lines (limit {MAX_FN})")
            here = module_path(crate, path)
            for m in re.finditer(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
                add_edge(sibling_edges, crate, here, resolve(crate, here, m.group(1)))
            # `use crate::x::{a, b}` groups: each name may be a module.
            for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}", code):
                for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", m.group(2)):
                    if name in ("self", "super", "crate"):
                        continue
                    add_edge(sibling_edges, crate, here, resolve(crate, here, m.group(1) + "::" + name))
    for (crate, parent), edges in sorted(sibling_edges.items()):
        for comp in cycles(edges):
            where = "::".join(parent) or "crate root"
            problems.append(f"{crate}: import cycle between modules of {where}: {', '.join(comp)}")
    if report:
        print("largest files (production lines):")
        for n, rel in sorted(sizes, reverse=True)[:8]:
            print(f"  {n:5} {rel}")
        print("longest functions:")
        for n, what in sorted(fns, reverse=True)[:8]:
            print(f"  {n:5} {what}")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"structure: {len(sizes)} files, {len(fns)} functions, no file over {MAX_FILE} lines, "
          f"no function over {MAX_FN} lines, no import cycle between sibling modules")


if __name__ == "__main__":
    main()
