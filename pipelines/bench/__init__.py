"""`crm bench`: the time, CPU and memory of the generator, the floor and the night at each size, stage by stage;
the CLV fit beside the lifetimes route; the incremental night; the dashboard pages (docs/benchmarks.md).

Modules: ``sampler`` (a child process and its sampled process tree), ``stages`` (the night's stages as time
windows over the samples), ``floor`` (DuckDB alone on the same files), ``routes`` (the two CLV routes), ``pages``
(the dashboard pages' render times), ``report`` (ratios, targets, markdown) and ``runner`` (what `crm bench` runs).
"""

from pipelines.bench.runner import BenchOptions, run_bench

__all__ = ["BenchOptions", "run_bench"]
