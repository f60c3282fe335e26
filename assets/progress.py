"""Progress lines of a Spark step as Dagster log events.

A silver table or feature table spends most of its time inside a few Spark actions
(a collect, a MERGE) that the step's own code cannot count, so the lines name the
step's phase and, on a classic session, the stages Spark is running and their tasks
done (``resources.progress.spark_status``). A Spark Connect session, or a step that
runs its transforms elsewhere (a Pipes job), gets the phase and elapsed time only.
"""

from typing import Any

import dagster as dg

from resources.progress import Progress, spark_status


def spark_step_progress(context: dg.AssetExecutionContext, **options: Any) -> Progress:
    """A ``Progress`` for this step, logging through ``context.log``, named by its asset.

    Only a ``spark`` resource the step has already is asked for its session (which
    the step is about to use anyway); a step without one never starts Spark here.
    """
    spark = getattr(context.resources, "spark", None)
    session = spark.session if spark is not None else None
    return Progress(
        context.asset_key.to_user_string(),
        context.log.info,
        status=spark_status(session),
        **options,
    )
