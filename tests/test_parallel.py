import time
from pathlib import Path

import pytest

from deitlab import parallel


def _square(x: int, report) -> int:
    report()
    report()
    return x * x


def _fail_on_two(x: int, report) -> int:
    if x == 2:
        raise ValueError(f"job {x} failed")
    report()
    return x


def _finish_or_fail(mode: str, folder: Path, report) -> None:
    if mode == "fail":
        deadline = time.time() + 20
        while not (folder / "started").exists() and time.time() < deadline:
            time.sleep(0.05)  # fail only once the slow job is running
        time.sleep(0.5)
        raise ValueError("the quick job failed")
    (folder / "started").touch()
    for _ in range(30):  # 3 s unless stopped
        time.sleep(0.1)
        report()
    (folder / "finished").touch()


def test_run_in_processes_returns_results_in_job_order_and_counts_steps(capsys):
    assert parallel.run_in_processes(_square, [(1,), (2,), (3,)], workers=2, steps_per_job=2) == [1, 4, 9]
    assert "6/6" in capsys.readouterr().err  # every reported step reached the bar


def test_run_in_processes_raises_the_jobs_error():
    with pytest.raises(ValueError, match="job 2 failed"):
        parallel.run_in_processes(_fail_on_two, [(1,), (2,)], workers=2, steps_per_job=1)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        parallel.run_in_processes(_square, [(1,)], workers=0, steps_per_job=2)


def test_a_failing_job_stops_the_running_ones_at_their_next_report(tmp_path):
    with pytest.raises(ValueError, match="the quick job failed"):
        parallel.run_in_processes(
            _finish_or_fail, [("slow", tmp_path), ("fail", tmp_path)], workers=2, steps_per_job=30
        )
    started = (tmp_path / "started").stat().st_mtime
    time.sleep(max(0.0, started + 5 - time.time()))  # unstopped, the slow job would have finished by now
    assert not (tmp_path / "finished").exists()
