#!/usr/bin/env python3
"""Checks output lines against C printf format strings, independently of stage2's code.

Usage: selftest_lines.py FORMATS_FILE < lines
Each format string is turned into a regular expression by a small printf parser written here from
the C standard's description of conversion specifications (flags, width, precision, length
modifier, conversion), so that a line matches only if some printf call with that format could have
printed it. Prints one line per output line that matches no format and exits 1 if there is any.
"""
import re
import sys

SPEC = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d+|\*))?(hh|h|ll|l|j|z|t|L)?([diouxXeEfgGsc%])")


def conv_regex(flags, width, prec, conv):
    if conv == "%":
        return "%"
    if conv in "di":
        body = r"-?\d+"
        if prec is not None and prec != "*":
            body = r"-?\d{%d,}" % int(prec)
    elif conv == "u":
        body = r"\d+" if prec is None else r"\d{%d,}" % int(prec)
    elif conv in "xX":
        digits = "[0-9a-f]" if conv == "x" else "[0-9A-F]"
        body = digits + ("+" if prec is None else "{%d,}" % int(prec))
    elif conv == "o":
        body = "[0-7]+"
    elif conv in "eEfgG":
        body = r"-?\d+(?:\.\d+)?(?:[eE][-+]\d+)?"
    elif conv == "c":
        body = "."
    else:  # s
        body = ".*?"
    if width is not None and width != "*":
        w = int(width)
        if "-" in flags:
            # left-justified: the value, then spaces up to the width
            return "(?=.{%d,})(?:%s) *" % (w, body) if conv == "s" else "(?:%s) *" % body
        if "0" in flags and conv not in "sc":
            return "(?:%s)" % body
        return " *(?:%s)" % body
    return "(?:%s)" % body


def to_regex(fmt):
    out, pos = [], 0
    for m in SPEC.finditer(fmt):
        out.append(re.escape(fmt[pos:m.start()]))
        out.append(conv_regex(m.group(1), m.group(2), m.group(3), m.group(5)))
        pos = m.end()
    out.append(re.escape(fmt[pos:]))
    return re.compile("^" + "".join(out) + "$")


def main():
    formats = []
    with open(sys.argv[1], encoding="utf8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#") or line == "":
                continue
            formats.append("" if line == '""' else line)
    regexes = [to_regex(f) for f in formats]
    bad = 0
    for line in sys.stdin.read().split("\n")[:-1]:
        if not any(r.match(line) for r in regexes):
            print("no format matches: %r" % line)
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
