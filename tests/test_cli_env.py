import json
import subprocess
import sys

from deitlab import cli
from deitlab.capabilities import Capability


def test_env_prints_report_and_capability_table(monkeypatch, capsys):
    fake = (Capability("torch.export", True, "ok"), Capability("optimize_for_mobile", False, "no XNNPACK"))
    monkeypatch.setattr("deitlab.capabilities.capabilities", lambda refresh=False: fake)
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    assert "threads" in out and "capabilities" in out and "no XNNPACK" in out


def test_env_json(monkeypatch, capsys):
    monkeypatch.setattr("deitlab.capabilities.capabilities", lambda refresh=False: (Capability("x", True, "fine"),))
    assert cli.main(["env", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["capabilities"] == [{"name": "x", "available": True, "reason": "fine"}]
    assert payload["report"]["online"] is False


def test_cli_without_a_command_points_to_the_help():
    done = subprocess.run([sys.executable, "-m", "deitlab.cli"], capture_output=True, text=True)
    assert done.returncode == 2 and "deitlab --help" in done.stderr and done.stderr.count("\n") == 1
