#!/usr/bin/env python3
"""mdBook preprocessor: remove the common indentation of every fenced code block, so
that code included by anchor from inside a function starts at column 0 and shows at
most 80 columns (tests/layout.rs checks the width the same way)."""
import json
import sys

if len(sys.argv) > 1 and sys.argv[1] == "supports":
    sys.exit(0)  # every renderer


def dedent(block):
    lines = block.split("\n")
    widths = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip()]
    cut = min(widths) if widths else 0
    return "\n".join(l[cut:] for l in lines)


def dedent_fences(text):
    out, block, fence = [], [], None
    for line in text.split("\n"):
        stripped = line.lstrip()
        if fence is None and stripped.startswith("```"):
            fence = line[: len(line) - len(stripped)] + "```"
            out.append(line)
        elif fence is not None and stripped.startswith("```") and not stripped.strip("`"):
            out.append(dedent("\n".join(block)))
            out.append(line)
            block, fence = [], None
        elif fence is not None:
            block.append(line)
        else:
            out.append(line)
    if fence is not None:
        out.append("\n".join(block))
    return "\n".join(out)


def walk(items):
    for item in items:
        chapter = item.get("Chapter") if isinstance(item, dict) else None
        if chapter:
            chapter["content"] = dedent_fences(chapter["content"])
            walk(chapter.get("sub_items", []))


context, book = json.load(sys.stdin)
walk(book.get("items", book.get("sections", [])))
json.dump(book, sys.stdout)
