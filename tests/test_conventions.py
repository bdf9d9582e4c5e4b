"""CLI conventions every command follows."""

import subprocess
import sys

from conftest import run_cli


def test_help_is_light():
    code = (
        "import sys; from modelctl.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('numpy', 'huggingface_hub.file_download', 'huggingface_hub.hf_api', 'jinja2',"
        " 'modelctl.runtime.model') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("modelctl ")


def test_unknown_command_is_usage_error():
    r = run_cli("no-such-command")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_children_start_with_default_sigint():
    """Every child a test spawns can be interrupted, however the runner itself was started (conftest)."""
    child = subprocess.run([sys.executable, "-c", "print(open('/proc/self/status').read())"],
                           capture_output=True, text=True, check=True)
    ignored = int(next(line.split()[1] for line in child.stdout.splitlines() if line.startswith("SigIgn:")), 16)
    assert not ignored & (1 << (2 - 1)), "SIGINT is ignored in a spawned child"
