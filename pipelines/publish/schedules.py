"""The nightly schedule: the whole graph, as of the night's date in the business timezone."""

import dagster as dg

from pipelines.resources import AS_OF_TAG
from pipelines.runs import free_queue


def build_nightly_schedule(job, cron: str, timezone: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every night: ingest the landing zone, build the warehouse, score, publish.",
    )
    def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        free_queue(context, job.name)
        # A run at 02:00 on the 24th covers everything up to the end of the 23rd: the cutoff is the 24th.
        as_of = context.scheduled_execution_time.date().isoformat()
        return dg.RunRequest(run_key=as_of, tags={AS_OF_TAG: as_of})

    return nightly_schedule
