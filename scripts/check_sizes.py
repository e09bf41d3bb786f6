#!/usr/bin/env python3
"""Size limits of the C++ sources: every file in src/ under 300 lines, no function over 80.

Prints the longest file, every file at or over the file limit and every function over the
function limit (path:line, name, lines), then exits 1 if there is any, else 0.

Functions are found by a brace-matching scan: comments, string and character literals (raw
strings too) and preprocessor lines are blanked out; then a '{' opens a function body when the
text since the previous ';', '{' or '}' ends in a parameter list, optionally followed by
qualifiers (const, noexcept, override, -> type) or a constructor's initializer list. A
function's length runs from the first line of its signature to its closing brace; lambdas and
local classes inside it count towards it. Namespaces, classes, structs, enums and braced
initializers are not functions, but inline member functions inside a class are.

usage: check_sizes.py [--root DIR] [--max-file-lines N] [--max-function-lines N] [--self-test]
"""
import argparse
import os
import re
import sys

SOURCE_SUFFIXES = (".cpp", ".hpp", ".h", ".cc", ".cu")
CONTROL = {"if", "for", "while", "switch", "catch", "do", "else", "try", "return"}
CONTAINER = re.compile(r"^(?:template\s*<.*>\s*)?(?:namespace|class|struct|union|enum)\b|"
                       r"^extern\s+\"C\"$")
# After the closing parenthesis of a parameter list: qualifiers and a trailing return type.
TAIL = re.compile(r"\)\s*(?:(?:const|noexcept|override|final|mutable|volatile|&|&&)\s*|"
                  r"->\s*[\w:<>,\s\*&]+?\s*)*$")
# A constructor's initializer list: ") : member_(expr), base(expr)".
INIT_LIST = re.compile(r"\)\s*(?:noexcept\s*)?:\s*[\w:]+\s*[\(\{].*[\)\}]$", re.S)


def blank_code(text):
    """text with comments, literals and preprocessor lines replaced by spaces (newlines kept),
    so that braces and parentheses in them are not seen."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if line_start and c == "#":  # a preprocessor line, with its continuations
            while i < n and not (text[i] == "\n" and text[i - 1] != "\\"):
                out.append("\n" if text[i] == "\n" else " ")
                i += 1
            continue
        line_start = c == "\n"
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not text[i - 1].isalnum()):
            m = re.match(r'R"([^(\s]{0,16})\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def head_kind(head):
    """'function', 'container' or 'other' for the text before a '{'."""
    h = " ".join(head.split())
    if not h:
        return "other"
    if CONTAINER.search(h):
        return "container"
    first = re.match(r"[A-Za-z_]\w*", h)
    if first and first.group(0) in CONTROL:
        return "other"
    if h.endswith("=") or h.endswith(",") or h.endswith("(") or h.endswith("return"):
        return "other"
    if TAIL.search(h) or INIT_LIST.search(h):
        return "function"
    return "other"


def function_name(head):
    h = " ".join(head.split())
    depth, k = 0, len(h) - 1
    # Walk back to the '(' that opens the parameter list (the last top-level one before ')').
    close = h.rfind(")") if not INIT_LIST.search(h) else None
    if close is None:  # constructor with an initializer list: the first top-level ") :"
        m = re.search(r"\)\s*(?:noexcept\s*)?:", h)
        close = m.start() if m else h.rfind(")")
    k = close
    while k >= 0:
        if h[k] == ")":
            depth += 1
        elif h[k] == "(":
            depth -= 1
            if depth == 0:
                break
        k -= 1
    m = re.search(r"((?:\w+(?:<[^()]*?>)?::)*(?:~?\w+|operator\s*\S+))\s*$", h[:max(k, 0)])
    return m.group(1) if m else h[:40]


def functions(text):
    """[(name, first_line, lines)] of the function bodies in C++ source text."""
    code = blank_code(text)
    line_of = [0] * (len(code) + 1)
    line = 1
    for idx, ch in enumerate(code):
        line_of[idx] = line
        if ch == "\n":
            line += 1
    line_of[len(code)] = line
    found = []
    stack = []  # per open brace: ("function", start, name) / ("container",) / ("other",)
    boundary = 0  # index after the last ';', '{' or '}'
    in_function = 0
    for idx, ch in enumerate(code):
        if ch == "{":
            head = code[boundary:idx]
            kind = "other" if in_function else head_kind(head)
            if kind == "function":
                offset = len(head) - len(head.lstrip())
                stack.append(("function", boundary + offset, function_name(head)))
                in_function += 1
            else:
                stack.append((kind,))
            boundary = idx + 1
        elif ch == "}":
            if stack:
                top = stack.pop()
                if top[0] == "function":
                    in_function -= 1
                    first = line_of[top[1]]
                    found.append((top[2], first, line_of[idx] - first + 1))
            boundary = idx + 1
        elif ch == ";":
            boundary = idx + 1
        elif ch == ":" and not in_function and code[idx - 1:idx + 1] != "::" and \
                code[idx:idx + 2] != "::" and re.search(r"\b(?:public|private|protected)\s*$",
                                                        code[boundary:idx]):
            boundary = idx + 1  # "public:" in a class body ends nothing else
    return found


def self_test():
    cases = [
        ("int f(int a) {\n  return a;\n}\n", [("f", 1, 3)]),
        ("namespace x {\nstruct S {\n  int g() const { return 1; }\n};\n}\n", [("g", 3, 1)]),
        ("void h(\n    int a,\n    int b) {\n  if (a) {\n    b++;\n  }\n}\n", [("h", 1, 7)]),
        ("const char* s = \"{\";\nint k() {\n  // }\n  return '}';\n}\n", [("k", 2, 4)]),
        ("const int t[] = {1, 2};\nenum class E { A, B };\n", []),
        ("Foo::Foo(int a) : a_(a), b_(2) {\n  x();\n}\n", [("Foo::Foo", 1, 3)]),
        ("auto l = R\"(})\";\nint m() {\n  auto q = [&](int i) {\n    return i;\n  };\n"
         "  return q(1);\n}\n", [("m", 2, 6)]),
        ("#define M(a) { a }\nclass C {\n public:\n  C() {}\n  ~C() { z(); }\n};\n",
         [("C", 4, 1), ("~C", 5, 1)]),
        ("template <class T>\nT n(T v) noexcept {\n  return v;\n}\n", [("n", 1, 4)]),
        ("extern \"C\" void on_sig(int s) {\n  g = s;\n}\n", [("on_sig", 1, 3)]),
        ("auto f() -> int {\n  return 1;\n}\n", [("f", 1, 3)]),
        ("template <class T>\nvoid Layer<T>::backward(int a) {\n}\n", [("Layer<T>::backward", 1, 3)]),
    ]
    bad = 0
    for text, want in cases:
        got = functions(text)
        if got != want:
            print(f"self-test FAIL: {text!r}\n  got  {got}\n  want {want}")
            bad += 1
    print(f"self-test: {len(cases) - bad}/{len(cases)} cases pass")
    return 1 if bad else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(here, "..", "src"))
    ap.add_argument("--max-file-lines", type=int, default=300)
    ap.add_argument("--max-function-lines", type=int, default=80)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()

    root = os.path.normpath(args.root)
    files = []
    for dirpath, _, names in os.walk(root):
        for name in sorted(names):
            if name.endswith(SOURCE_SUFFIXES):
                files.append(os.path.join(dirpath, name))
    files.sort()
    problems = 0
    sizes = []
    long_functions = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        sizes.append((text.count("\n") + (0 if text.endswith("\n") or not text else 1), path))
        for name, first, lines in functions(text):
            if lines > args.max_function_lines:
                long_functions.append((path, first, name, lines))
    rel = lambda p: os.path.relpath(p, os.path.join(root, ".."))
    if sizes:
        lines, path = max(sizes)
        print(f"longest file: {rel(path)} ({lines} lines)")
    for lines, path in sorted(sizes, reverse=True):
        if lines >= args.max_file_lines:
            print(f"file over the limit: {rel(path)}: {lines} lines "
                  f"(allowed: < {args.max_file_lines})")
            problems += 1
    for path, first, name, lines in long_functions:
        print(f"function over the limit: {rel(path)}:{first} {name}: {lines} lines "
              f"(allowed: <= {args.max_function_lines})")
        problems += 1
    print(f"{len(files)} files, {problems} over the limits")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
