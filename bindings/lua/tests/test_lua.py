"""The Lua binding: its declarations are the header's (generated, and laid out as gcc lays
them out), and its own suite passes inside LÖVE's LuaJIT (bindings/lua/tests/main.lua)."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
HEADER = ROOT / "ffi" / "include" / "baton.h"
sys.path.insert(0, str(ROOT / "bindings" / "lua"))
import generate  # noqa: E402

LOVE = shutil.which("love")
needs_love = pytest.mark.skipif(LOVE is None, reason="love (LÖVE 11.4) is not installed: apt-get install love")


def library() -> pathlib.Path:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "debug" / "libbaton.so"
    assert path.exists(), f"{path} is missing: cargo build -p baton-ffi"
    return path


def run_love(*args, timeout=120):
    env = dict(os.environ, BATON_LIB=str(library()))
    return subprocess.run([LOVE, str(ROOT / "bindings" / "lua" / "tests"), *args], env=env, timeout=timeout,
                          capture_output=True, text=True)


def test_checked_in_declarations_are_what_the_header_gives():
    checked_in = (ROOT / "bindings" / "lua" / "baton_h.lua").read_text()
    assert generate.generate(HEADER.read_text()) == checked_in, "stale: run python3 bindings/lua/generate.py"


def test_a_header_construct_the_generator_does_not_know_is_refused():
    header = HEADER.read_text()
    for added in ["#pragma once\n", "#define BATON_NAME \"baton\"\n", "#include <stdbool.h>\n", "#if FOO(1)\n#endif\n"]:
        with pytest.raises(generate.HeaderError):
            generate.generate(added + header)


def structs():
    """Each struct of the header and its fields, in order."""
    found = {}
    for name, body in re.findall(r"typedef struct (\w+) \{(.*?)\} \1;", HEADER.read_text(), re.S):
        found[name] = re.findall(r"^\s+[\w\s\*]+?\b(\w+);", body, re.M)
    assert {"baton_config", "baton_input", "baton_event", "baton_session_status"} <= set(found)
    return found


@needs_love
def test_luajit_lays_out_every_struct_as_gcc_does(tmp_path):
    fields = tmp_path / "fields.txt"
    fields.write_text("".join(f"{name} {' '.join(members)}\n" for name, members in structs().items()))
    program = ["#include <stdio.h>", "#include <stddef.h>", '#include "baton.h"', "int main(void) {"]
    for name, members in structs().items():
        parts = " ".join(f"{m}@%zu" for m in members)
        offsets = ", ".join(f"offsetof({name}, {m})" for m in members)
        program.append(f'    printf("{name} %zu {parts}\\n", sizeof({name}), {offsets});')
    program += ["    return 0;", "}"]
    (tmp_path / "layout.c").write_text("\n".join(program) + "\n")
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-I", str(HEADER.parent), str(tmp_path / "layout.c"),
                    "-o", str(tmp_path / "layout")], check=True)
    gcc = subprocess.run([str(tmp_path / "layout")], check=True, capture_output=True, text=True).stdout
    luajit = run_love("layout", str(fields))
    assert luajit.returncode == 0, luajit.stderr
    assert luajit.stdout.split("\n") == gcc.split("\n")


@needs_love
def test_the_lua_suite_passes_inside_love():
    result = run_love()
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    suite = (ROOT / "bindings" / "lua" / "tests" / "main.lua").read_text()
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == suite.count("\nfunction tests."), \
        result.stdout
