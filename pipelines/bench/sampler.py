"""Run a command as a child process and sample its whole process tree: resident memory and CPU seconds.

A thread reads /proc every ``interval`` seconds while the child runs. The tree is the child and every descendant
(``/proc/<pid>/task/<tid>/children`` where the kernel offers it, else the parent PIDs of every process in /proc).
Per sample: the sum of the processes' resident set sizes (statm) and of their CPU time, utime + stime + cutime +
cstime (/proc/<pid>/stat): a process's cutime and cstime hold its descendants already reaped, so the sum counts each
CPU second once, whether its process is alive or gone. The last sample, when the child has exited, holds the CPU time
the kernel reports for the whole tree (``os.wait4``).

Summed RSS counts memory shared between processes once per process: a bound above the memory the tree used.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_INTERVAL_SECONDS = 0.2


@dataclass(frozen=True)
class Sample:
    """The process tree at one moment: ``at`` (seconds since the epoch), resident bytes, CPU seconds so far."""

    at: float
    rss_bytes: int
    cpu_seconds: float


@dataclass(frozen=True)
class Measured:
    """A sampled child process: its exit code, start and end (seconds since the epoch) and the samples."""

    exit_code: int
    started: float
    ended: float
    samples: tuple[Sample, ...]
    max_process_rss_bytes: int  # the largest single process of the tree (ru_maxrss of os.wait4)

    @property
    def wall_seconds(self) -> float:
        return self.ended - self.started

    @property
    def cpu_seconds(self) -> float:
        return max((sample.cpu_seconds for sample in self.samples), default=0.0)

    @property
    def peak_rss_bytes(self) -> int:
        return max((sample.rss_bytes for sample in self.samples), default=0)


def parse_stat(text: str) -> tuple[int, float]:
    """Parent PID and CPU seconds (utime + stime + cutime + cstime) from the text of /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may hold spaces: the fields are read after its last ``)``.
    """
    fields = text[text.rindex(")") + 2 :].split()
    # after the name: state [0], ppid [1], ..., utime [11], stime [12], cutime [13], cstime [14]
    ticks = sum(int(field) for field in fields[11:15])
    return int(fields[1]), ticks / CLOCK_TICKS


def tree_members(root: int, parent_of: dict[int, int]) -> list[int]:
    """``root`` and its descendants, given every process's parent PID."""
    children: dict[int, list[int]] = {}
    for pid, parent in parent_of.items():
        children.setdefault(parent, []).append(pid)
    members, pending = [], [root]
    while pending:
        pid = pending.pop()
        members.append(pid)
        pending.extend(children.get(pid, ()))
    return members


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:  # the process ended between listing and reading
        return None


def _children_files_exist() -> bool:
    return any(Path("/proc/self/task").glob("*/children"))


def _tree_by_children_files(root: int) -> list[int]:
    members, pending = [], [root]
    while pending:
        pid = pending.pop()
        members.append(pid)
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            text = _read(str(children)) or ""
            pending.extend(int(child) for child in text.split())
    return members


def _tree_by_parents(root: int) -> list[int]:
    parent_of = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            text = _read(f"/proc/{entry.name}/stat")
            if text:
                parent_of[int(entry.name)] = parse_stat(text)[0]
    return tree_members(root, parent_of) if root in parent_of else []


def tree_usage(root: int, *, by_children_files: bool | None = None) -> tuple[int, float] | None:
    """Resident bytes and CPU seconds of ``root``'s process tree now; None when ``root`` is gone."""
    if by_children_files is None:
        by_children_files = _children_files_exist()
    members = _tree_by_children_files(root) if by_children_files else _tree_by_parents(root)
    rss, cpu, seen_root = 0, 0.0, False
    for pid in members:
        stat, statm = _read(f"/proc/{pid}/stat"), _read(f"/proc/{pid}/statm")
        if not stat:
            continue
        seen_root |= pid == root
        cpu += parse_stat(stat)[1]
        if statm:
            rss += int(statm.split()[1]) * PAGE_SIZE
    return (rss, cpu) if seen_root else None


def run_sampled(
    command: list[str],
    environ: dict[str, str],
    stdout: Path,
    stderr: Path,
    *,
    cwd: Path | None = None,
    interval: float = SAMPLE_INTERVAL_SECONDS,
) -> Measured:
    """Run ``command`` to its end, its output in the files ``stdout`` and ``stderr``, sampling its process tree."""
    by_children_files = _children_files_exist()
    samples: list[Sample] = []
    done = threading.Event()
    started = time.time()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, env=environ, stdout=out, stderr=err, cwd=cwd)

    def sample() -> None:
        while not done.is_set():
            usage = tree_usage(process.pid, by_children_files=by_children_files)
            if usage is not None:
                samples.append(Sample(time.time(), *usage))
            done.wait(interval)

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    sampler.start()
    # wait4 rather than Popen.wait: it also gives the CPU time of the whole tree, reaped descendants included
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.time()
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    samples.append(Sample(ended, 0, usage.ru_utime + usage.ru_stime))
    return Measured(process.returncode, started, ended, tuple(samples), usage.ru_maxrss * 1024)
