"""`labbridge check`: the exit codes, the human format and the JSON contract other tools depend on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CONFIG_PATH, EXAMPLES, ROOT

LINE = re.compile(r"^(?P<prog>.+):(?P<line>\d+): (?P<sev>error|warning)\[(?P<code>[a-z-]+)\]: (?P<msg>.+)$")


def run(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "labbridge.cli.main", *args], capture_output=True, text=True, env=full_env,
        cwd=cwd, timeout=60,
    )


def test_clean_program_exits_0_with_summary():
    r = run("check", str(EXAMPLES / "mill-1-nameplate.nc"), "--machine", "mill-1", "--config", str(CONFIG_PATH))
    assert r.returncode == 0, r.stderr
    assert "OK for mill-1" in r.stdout and "bounds (machine mm)" in r.stdout and "estimated run time" in r.stdout


def test_student_program_exits_1_with_compiler_style_lines():
    prog = str(EXAMPLES / "student-first-try.nc")
    r = run("check", prog, "--machine", "mill-1", "--config", str(CONFIG_PATH))
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    diags = [LINE.match(line) for line in lines[:-1]]
    assert all(diags), lines
    assert {m["prog"] for m in diags} == {prog}
    assert {"no-feed-rate", "envelope", "spindle-speed", "unsupported", "keep-out"} <= {m["code"] for m in diags}
    assert "REJECTED" in lines[-1]
    assert r.stderr == ""


def test_json_is_exactly_one_object_with_the_contract_keys():
    r = run("check", str(EXAMPLES / "student-first-try.nc"), "--machine", "mill-1", "--json",
            "--config", str(CONFIG_PATH))
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert set(data) == {"program", "machine", "ok", "lines", "bounds", "estimated_seconds", "diagnostics"}
    assert data["machine"] == "mill-1" and data["ok"] is False and data["lines"] == 12
    assert set(data["bounds"]) == {"min", "max"} and set(data["bounds"]["min"]) == {"X", "Y", "Z"}
    for d in data["diagnostics"]:
        assert set(d) == {"line", "severity", "code", "message"}


def test_lathe_json_bounds_have_x_and_z():
    r = run("check", str(EXAMPLES / "lathe-1-shaft.nc"), "--machine", "lathe-1", "--json",
            "--config", str(CONFIG_PATH))
    assert r.returncode == 0, r.stdout
    assert set(json.loads(r.stdout)["bounds"]["max"]) == {"X", "Z"}


@pytest.mark.slow
def test_every_example_is_clean_on_its_machine():
    for name, machine in (("mill-1-nameplate.nc", "mill-1"), ("lathe-1-shaft.nc", "lathe-1"),
                          ("mill-2-drill-plate.nc", "mill-2")):
        r = run("check", str(EXAMPLES / name), "--machine", machine, "--config", str(CONFIG_PATH))
        assert r.returncode == 0, r.stdout


@pytest.mark.slow
def test_missing_file_unknown_machine_bad_config_exit_2_without_traceback(tmp_path):
    cases = [
        ("check", str(tmp_path / "none.nc"), "--machine", "mill-1", "--config", str(CONFIG_PATH)),
        ("check", str(EXAMPLES / "mill-1-nameplate.nc"), "--machine", "mill-7", "--config", str(CONFIG_PATH)),
        ("check", str(EXAMPLES / "mill-1-nameplate.nc"), "--machine", "mill-1", "--config", str(tmp_path / "x")),
        ("check", str(tmp_path), "--machine", "mill-1", "--config", str(CONFIG_PATH)),
        ("check", "--machine", "mill-1"),
    ]
    for args in cases:
        r = run(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.strip(), args


def test_binary_program_is_reported_not_crashed(tmp_path):
    prog = tmp_path / "photo.jpg"
    prog.write_bytes(bytes(range(256)) * 20)
    r = run("check", str(prog), "--machine", "mill-1", "--json", "--config", str(CONFIG_PATH))
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["diagnostics"] and {d["code"] for d in data["diagnostics"]} == {"binary"}


@pytest.mark.slow
def test_config_from_environment_and_default_path(tmp_path):
    prog = str(EXAMPLES / "mill-1-nameplate.nc")
    r = run("check", prog, "--machine", "mill-1", env={"LABBRIDGE_CONFIG": str(CONFIG_PATH)}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("check", prog, "--machine", "mill-1", cwd=ROOT)  # ./config/machines.yaml
    assert r.returncode == 0, r.stderr
    r = run("check", prog, "--machine", "mill-1", env={"LABBRIDGE_CONFIG": str(tmp_path / "missing.yaml")})
    assert r.returncode == 2 and "missing.yaml" in r.stderr


def test_invalid_config_message_is_one_line_per_problem(tmp_path):
    bad = tmp_path / "machines.yaml"
    bad.write_text(CONFIG_PATH.read_text().replace("max_feed: 2000", "max_feed: 2000\n    max_fead: 3"))
    r = run("machines", "--config", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip() == f"labbridge: {bad}: machines.mill-1.max_fead: unknown key (check the spelling; see " \
                               "the config reference in README.md)"


@pytest.mark.slow
def test_usage_errors_are_one_line_naming_the_help():
    for args, text in ((("check", str(EXAMPLES / "mill-1-nameplate.nc")), "Missing option '--machine'"),
                       (("check", "x.nc", "-m", "mill-1", "--bogus"), "No such option: --bogus")):
        r = run(*args)
        assert r.returncode == 2
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"labbridge: {text}") and line.endswith("(see 'labbridge check --help')")
