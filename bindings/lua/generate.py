#!/usr/bin/env python3
"""Generates bindings/lua/baton_h.lua (LuaJIT `ffi.cdef` declarations and name tables)
from ffi/include/baton.h, so the Lua binding cannot drift from the header.

    python3 bindings/lua/generate.py           # rewrite baton_h.lua
    python3 bindings/lua/generate.py --check   # exit 1 if baton_h.lua is not what the header gives

LuaJIT's C parser takes declarations, not a preprocessor: this script runs the header's
few directives itself (as a C11 compiler would, `__cplusplus` undefined), turns each
integer `#define` into a `static const` LuaJIT folds, and drops comments. Any directive
or define it does not understand is an error, so a header that grows a new construct
fails here loudly instead of producing a binding that is quietly wrong.
"""

from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
HEADER = ROOT / "ffi" / "include" / "baton.h"
OUTPUT = ROOT / "bindings" / "lua" / "baton_h.lua"

# What the header's #if expressions may ask, as a C11 compiler sees it.
MACROS = {"__STDC_VERSION__": 201112}


class HeaderError(Exception):
    """The header holds something this generator does not know how to translate."""


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def evaluate(expression: str) -> bool:
    """Evaluates an #if expression made of defined(X), macros, numbers, ||, && and >=."""
    python = re.sub(r"defined\s*\(\s*(\w+)\s*\)", lambda m: "True" if m.group(1) in MACROS else "False", expression)
    python = re.sub(r"\b(\d+)L\b", r"\1", python)
    python = re.sub(r"\b(__\w+__)\b", lambda m: str(MACROS.get(m.group(1), 0)), python)
    python = python.replace("||", " or ").replace("&&", " and ").replace("!", " not ").replace(" not =", "!=")
    if not re.fullmatch(r"[\sA-Za-z0-9_()<>=!]*", python) or re.search(r"[A-Za-z_]\w*", re.sub(r"\b(True|False|or|and|not)\b", "", python)):
        raise HeaderError(f"unsupported #if expression: {expression}")
    return bool(eval(python, {"__builtins__": {}}))  # only the tokens checked above


def integer(expression: str) -> int:
    """The value of a #define's integer expression (numbers, shifts, parentheses)."""
    if not re.fullmatch(r"[\s0-9xXa-fA-FuUlL()<>+*-]+", expression):
        raise HeaderError(f"unsupported #define value: {expression}")
    return int(eval(re.sub(r"(?<=[0-9a-fA-F])[uUlL]+\b", "", expression), {"__builtins__": {}}))


def preprocess(text: str) -> tuple[list[str], list[tuple[str, int]]]:
    """The header's declaration lines that a C11 compiler keeps, and its integer defines."""
    lines: list[str] = []
    defines: list[tuple[str, int]] = []
    stack: list[tuple[bool, bool]] = []  # (this branch is kept, some branch was taken)
    for line in text.splitlines():
        stripped = line.strip()
        kept = all(branch for branch, _ in stack)
        if not stripped.startswith("#"):
            if kept and stripped:
                lines.append(line.rstrip())
            continue
        directive, _, rest = stripped[1:].strip().partition(" ")
        rest = rest.strip()
        if directive in ("if", "ifdef", "ifndef"):
            value = {
                "if": lambda: evaluate(rest),
                "ifdef": lambda: rest in MACROS,
                "ifndef": lambda: rest not in MACROS,
            }[directive]()
            stack.append((value, value))
        elif directive == "else":
            _, taken = stack.pop()
            stack.append((not taken, True))
        elif directive == "endif":
            stack.pop()
        elif directive == "include":
            if rest not in ("<stddef.h>", "<stdint.h>"):
                raise HeaderError(f"unexpected #include {rest} (LuaJIT knows only the standard types)")
        elif directive == "define":
            if not kept:
                continue
            name, _, value = rest.partition(" ")
            if name == "BATON_H":
                continue
            defines.append((name, integer(value)))
        else:
            raise HeaderError(f"unsupported directive: {stripped}")
    if stack:
        raise HeaderError("unbalanced #if/#endif")
    return lines, defines


def enums(declarations: str) -> dict[str, list[tuple[str, int]]]:
    """Each enum's constants, in order, from the declarations."""
    found = {}
    for name, body in re.findall(r"enum\s+(\w+)\s*\{(.*?)\}", declarations, flags=re.S):
        found[name] = [(constant, int(value)) for constant, value in re.findall(r"(\w+)\s*=\s*(\d+)", body)]
    return found


def lua_names(prefix: str, constants: list[tuple[str, int]]) -> str:
    """A Lua table from a code to its short lower-case name (BATON_EVENT_KIND_RUN_TICK -> run_tick)."""
    rows = []
    for constant, value in constants:
        if not constant.startswith(prefix):
            raise HeaderError(f"{constant} does not start with {prefix}")
        rows.append(f'  [{value}] = "{constant[len(prefix):].lower()}",')
    return "{\n" + "\n".join(rows) + "\n}"


def generate(header: str) -> str:
    """baton_h.lua's text for the header's text."""
    lines, defines = preprocess(strip_comments(header))
    declarations = "\n".join(lines)
    declarations = declarations.replace('extern "C" {', "")
    if "__" in declarations:
        raise HeaderError("a compiler-specific token survived preprocessing")
    constants = "\n".join(f"static const uint32_t {name} = {value};" for name, value in defines)
    found = enums(declarations)
    tables = []
    for enum, prefix, lua in [
        ("baton_result", "BATON_RESULT_", "results"),
        ("baton_event_kind", "BATON_EVENT_KIND_", "event_kinds"),
        ("baton_leave_outcome", "BATON_LEAVE_OUTCOME_", "leave_outcomes"),
        ("baton_tick_mode", "BATON_TICK_MODE_", "tick_modes"),
        ("baton_durability", "BATON_DURABILITY_", "durabilities"),
    ]:
        if enum not in found:
            raise HeaderError(f"enum {enum} is missing from the header")
        tables.append(f"M.{lua} = {lua_names(prefix, found[enum])}")
    for name, value in defines:
        tables.append(f"M.{name} = {value}")
    return (
        "-- Generated by bindings/lua/generate.py from ffi/include/baton.h; do not edit.\n"
        "-- Regenerate: python3 bindings/lua/generate.py (a test fails when this file drifts).\n"
        "local M = {}\n\n"
        "M.cdef = [[\n" + constants + "\n" + declarations + "\n]]\n\n" + "\n\n".join(tables) + "\n\nreturn M\n"
    )


def main() -> int:
    try:
        text = generate(HEADER.read_text())
    except HeaderError as error:
        print(f"generate.py: {HEADER}: {error}", file=sys.stderr)
        return 1
    if "--check" in sys.argv[1:]:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python3 bindings/lua/generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
