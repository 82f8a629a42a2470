#!/usr/bin/env python3
"""tests/lint.py -- the structure rules of bifrost.c, checked (./build.sh lint).

bifrost.c is one translation unit of sections in dependency order. What keeps it
navigable is written down in its table of contents and checked here:

  toc       the table of contents lists the section banners, same numbers, same names
  prefix    every function sits in the section that owns its name's prefix
  downward  a function calls (or takes the address of) only functions of its own section
            or of sections above it, except the pairs in UPWARD (each says why)
  length    no function body is longer than MAX_LINES lines
  leaf      the leaf sections do no I/O and no malloc (arena_ and buf_ are the allocators)
  prose     no "section N" in comments: sections are named by prefix (numbers go stale)

The table of contents line of a section is `N. prefixes  description`, prefixes joined by
'/' (`3. str_/buf_/sb_ ...`); a section whose name has no '_' (base, main) owns no prefix,
and its functions may be named anything no other section owns.

Exit status 0 when clean; otherwise one line per finding, `bifrost.c:LINE: rule: text`.
"""
import re
import sys

MAX_LINES = 80

# Calls that go up the file on purpose: (caller prefix or function, callee).
UPWARD = {
    # cfg_ hands the "governance" object to gov_, whose types live below cfg_.
    ("cfg_parse", "gov_cfg"),
    # conn_ hands the admin paths to admin_, which answers through conn_'s senders.
    ("conn_dispatch", "admin_dispatch"),
}

LEAF = {"arena", "str", "json", "http", "sse", "sigv4", "resp", "route", "prov", "xlate"}
LEAF_FORBIDDEN = {
    "malloc", "calloc", "realloc", "free", "strdup", "strndup", "open", "openat", "close",
    "read", "write", "pread", "pwrite", "fopen", "fclose", "fread", "fwrite", "printf",
    "fprintf", "puts", "fputs", "send", "recv", "sendmsg", "recvmsg", "socket", "connect",
    "accept", "mmap", "munmap", "getaddrinfo", "time", "clock_gettime", "now_ns",
}
LEAF_ALLOC_OK = {"arena", "buf"}  # the two allocators: arena chunks, growable buffers
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "do", "else", "case",
            "alignof", "_Alignof", "offsetof", "defined", "__attribute__", "typeof"}

DEF_RE = re.compile(r"^(?:static\s+)?(?:inline\s+)?(?:const\s+)?(?:struct\s+|enum\s+|unsigned\s+)?"
                    r"[A-Za-z_]\w*[\s\*]+([A-Za-z_]\w*)\s*\(")
TOC_RE = re.compile(r"^ \*\s+(\d+)\.\s+(\S+)\s")
BANNER_RE = re.compile(r"^ \* (\d+)\. (\S+) ")
IDENT_RE = re.compile(r"[A-Za-z_]\w*")


def strip_code(line):
    """The line without string/char literals and comments (good enough for this file)."""
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(?:\\.|[^'\\])+'", "''", line)
    line = re.sub(r"/\*.*?\*/", "", line)
    return re.sub(r"//.*", "", line)


def prefixes_of(name):
    return [] if "_" not in name else [p.rstrip("_") for p in name.split("/")]


def main(path):
    src = open(path, encoding="utf-8").read().split("\n")
    errs = []

    def err(line, rule, text):
        errs.append(f"{path}:{line}: {rule}: {text}")

    # --- table of contents and banners
    toc, i = [], 0
    while i < len(src) and "TABLE OF CONTENTS" not in src[i]:
        i += 1
    for line in src[i:i + 60]:
        m = TOC_RE.match(line)
        if m:
            toc.append((int(m.group(1)), m.group(2)))
        elif toc and line.startswith(" */"):
            break
    banners = []  # (number, name, first line)
    for n, line in enumerate(src):
        if n and src[n - 1].startswith("/* ====") and (m := BANNER_RE.match(line)):
            banners.append((int(m.group(1)), m.group(2), n + 1))
    if [(a, b.split("/")[0]) for a, b, _ in banners] != [(a, b.split("/")[0]) for a, b in toc]:
        err(1, "toc", "the table of contents %s does not list the banners %s" %
            ([f"{a}.{b}" for a, b in toc], [f"{a}.{b}" for a, b, _ in banners]))
    owner = {}  # prefix -> section number
    secname = {}
    for num, name in toc:
        secname[num] = name.split("/")[0].rstrip("_")
        for p in prefixes_of(name):
            owner[p] = num

    def section_at(line):
        s = 0
        for num, _, first in banners:
            if first <= line:
                s = num
        return s

    # --- function definitions: name -> (section, first line, last line)
    funcs = {}
    n = 0
    while n < len(src):
        line = src[n]
        m = DEF_RE.match(line)
        if m and not line.rstrip().endswith(";") and not line.startswith((" ", "\t", "#")) \
                and not m.group(1).startswith("__"):
            if "{" in line and line.rstrip().endswith("}"):  # a one-line function
                funcs[m.group(1)] = (section_at(n + 1), n + 1, n, n + 1)
                n += 1
                continue
            j = n
            while j < len(src) and src[j] != "{" and not src[j].rstrip().endswith(";"):
                j += 1
            if j < len(src) and src[j] == "{":
                k = j
                while k < len(src) and src[k] != "}":
                    k += 1
                funcs[m.group(1)] = (section_at(n + 1), n + 1, j + 1, k + 1)
                n = k
        n += 1

    for name, (sec, first, body, last) in funcs.items():
        pre = name.split("_")[0] if "_" in name else ""
        mine = [p for p, s in owner.items() if s == sec]
        if mine and pre not in mine:
            err(first, "prefix", f"{name}() is in section {sec} ({'/'.join(mine)}) but not named so")
        elif not mine and pre in owner:
            err(first, "prefix", f"{name}() belongs in section {owner[pre]} ({pre}_), not {sec}")
        if last - body - 1 > MAX_LINES:
            err(first, "length", f"{name}() is {last - body - 1} lines (at most {MAX_LINES})")
        leaf = secname.get(sec) in LEAF
        for ln in range(body, last):
            code = strip_code(src[ln - 1])
            for mm in IDENT_RE.finditer(code):
                callee = mm.group(0)
                if callee in KEYWORDS or callee == name or code[:mm.start()].rstrip().endswith((".", "->")):
                    continue
                if not code[mm.end():].lstrip().startswith("("):
                    continue  # a variable or member of the same name; only calls count
                if callee in funcs:
                    csec = funcs[callee][0]
                    if csec > sec and (name, callee) not in UPWARD:
                        err(ln, "downward", f"{name}() (section {sec}) uses {callee}() of section {csec}")
                elif leaf and callee in LEAF_FORBIDDEN:
                    if pre in LEAF_ALLOC_OK and callee in ("malloc", "free", "realloc", "calloc"):
                        continue
                    err(ln, "leaf", f"{name}() in leaf section {secname[sec]}_ calls {callee}()")
    for n, line in enumerate(src):
        if re.search(r"\b[Ss]ections? \d", line):
            err(n + 1, "prose", "a section named by number; name it by its prefix")
    for caller, callee in sorted(UPWARD):
        if caller not in funcs or callee not in funcs:
            err(1, "downward", f"UPWARD lists {caller} -> {callee}, which is not in the file any more")
    for e in errs:
        print(e)
    if errs:
        print(f"lint: {len(errs)} finding(s) in {path}", file=sys.stderr)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "bifrost.c"))
