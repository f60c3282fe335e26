-- Canned report: NHS Notify's completed comms report for one day, over the rows of the
-- completed_comms view. One row per request item plan that reached a final state on
-- the day, plus each FAILED request item without a plan that failed on the day; the
-- asset writes one file per client and drops clientid. The columns are the view's:
-- NHS Notify's report selects them all, in the view's order. The day is the half-open
-- interval [:day_start, :day_end) of UTC instants. Pseudonymous: no NHS number.
SELECT *
FROM completed_comms
WHERE (
        CAST(requestitemplancompletedtime AS TIMESTAMPTZ) >= :day_start
        AND CAST(requestitemplancompletedtime AS TIMESTAMPTZ) < :day_end
    )
   OR (
        requestitemplanid IS NULL
        AND CAST(requestitemcompletedtime AS TIMESTAMPTZ) >= :day_start
        AND CAST(requestitemcompletedtime AS TIMESTAMPTZ) < :day_end
    )
ORDER BY clientid, requestid, requestitemid, requestitemplanid
