-- Batches (requests) ready for a completed batch report, as NHS Notify decides: every
-- request item has a final status (DELIVERED or FAILED) and so has every plan of them
-- (DELIVERED, FAILED or SKIPPED). The last completion (of an item or a plan) lies in
-- the lookback but at least the settle time ago (late deliveries of a batch's records
-- arrive within it), and the batch began inside the staging tables' coverage, so none
-- of its items can be missing.
WITH plans AS (
    SELECT
        clientid,
        requestitemid,
        SUM(CASE WHEN status IN ('DELIVERED', 'FAILED', 'SKIPPED') THEN 0 ELSE 1 END)
            AS unfinished,
        MAX(completedtime) AS completedtime
    FROM request_item_plan_status
    GROUP BY clientid, requestitemid
),
batches AS (
    SELECT
        i.clientid,
        i.requestid,
        i.requestrefid,
        CAST(COUNT(*) AS BIGINT) AS itemcount,
        SUM(CASE WHEN i.status IN ('DELIVERED', 'FAILED') THEN 0 ELSE 1 END) AS unfinisheditems,
        COALESCE(SUM(p.unfinished), 0) AS unfinishedplans,
        MIN(i.createdtime) AS firstcreatedtime,
        GREATEST(MAX(i.completedtime), COALESCE(MAX(p.completedtime), MAX(i.completedtime)))
            AS lastcompletedtime
    FROM request_item_status AS i
    LEFT JOIN plans AS p
        ON p.requestitemid = i.requestitemid AND p.clientid = i.clientid
    WHERE i.requestid IS NOT NULL
      AND i.clientid IS NOT NULL
    GROUP BY i.clientid, i.requestid, i.requestrefid
)
SELECT clientid, requestid, requestrefid, itemcount, firstcreatedtime, lastcompletedtime
FROM batches
WHERE unfinisheditems = 0
  AND unfinishedplans = 0
  AND lastcompletedtime >= :completed_since
  AND lastcompletedtime < :settled_before
  AND firstcreatedtime >= :created_since
ORDER BY lastcompletedtime, requestid
