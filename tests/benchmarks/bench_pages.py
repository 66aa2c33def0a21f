"""Render time of every dashboard page on the published snapshot: `python tests/benchmarks/bench_pages.py [PAGE]`.

The benchmark itself is pipelines/bench/pages.py (`crm bench` runs it on the snapshot of its largest size).
"""

from pipelines.bench.pages import main

if __name__ == "__main__":
    main()
