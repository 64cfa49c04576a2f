"""Independent CPU jobs in worker processes, one thread each, behind one progress bar.

Small models use threads poorly: their matrix products are too small to split well, so two
one-thread processes training two models side by side finish sooner than one two-thread
process training them in turn (notebook 03 trains its 20 small models this way).
Workers are *spawned* (not forked), which is safe
from a Jupyter kernel and from OpenMP; a script that calls :func:`run_in_processes`
therefore needs the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import torch
from tqdm.auto import tqdm


class JobStopped(RuntimeError):
    """Raised inside a worker's job when the run it belongs to was interrupted or failed."""


_progress: multiprocessing.queues.Queue | None = None
_stop: multiprocessing.synchronize.Event | None = None


def _start_worker(progress: multiprocessing.queues.Queue, stop: multiprocessing.synchronize.Event) -> None:
    global _progress, _stop
    _progress, _stop = progress, stop
    torch.set_num_threads(1)


def _raise_if_stopped() -> None:
    if _stop.is_set():
        raise JobStopped("the run was interrupted, or another job failed")


def _report_step() -> None:
    _raise_if_stopped()
    _progress.put(1)


def _run_job(function: Callable, args: tuple) -> object:
    _raise_if_stopped()
    return function(*args, report=_report_step)


def run_in_processes(
    function: Callable,
    jobs: Sequence[tuple],
    workers: int,
    steps_per_job: int,
    desc: str = "jobs",
) -> list:
    """``function(*job, report=...)`` for every job, ``workers`` at a time, in job order.

    ``function`` must be importable (a module-level function) and call ``report()`` once per
    step; the bar counts ``steps_per_job`` steps per job. The first failing job — or an
    interrupt (Jupyter's stop button) — stops the others at their next ``report()`` and
    drops the ones not yet started; a job's exception is raised here.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    context = multiprocessing.get_context("spawn")
    progress, stop = context.Queue(), context.Event()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(progress, stop))
    finished = False
    try:
        with tqdm(total=len(jobs) * steps_per_job, desc=desc) as bar:
            futures = [pool.submit(_run_job, function, tuple(job)) for job in jobs]
            while not all(future.done() for future in futures):
                _raise_first_failure(futures)
                _count_steps(progress, bar)
            _raise_first_failure(futures)
            _count_steps(progress, bar)
        finished = True
        return [future.result() for future in futures]
    finally:
        if not finished:  # a failure or an interrupt: free the CPU now
            stop.set()
        pool.shutdown(wait=finished, cancel_futures=not finished)


def _count_steps(progress: multiprocessing.queues.Queue, bar: tqdm) -> None:
    """Advance the bar by the steps reported since the last call (waits ¼ s for the first)."""
    try:
        bar.update(progress.get(timeout=0.25))
        while True:
            bar.update(progress.get_nowait())
    except queue.Empty:
        pass


def _raise_first_failure(futures: list[Future]) -> None:
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()
