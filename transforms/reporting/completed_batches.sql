-- Batches (requests) ready for a completed batch report: every request item has a
-- final status, the last one completed in the lookback but at least the settle time
-- ago (late deliveries of a batch's records arrive within it), and the batch began
-- inside the staging tables' coverage, so none of its items can be missing.
SELECT
    clientid,
    requestid,
    requestrefid,
    CAST(COUNT(*) AS BIGINT) AS itemcount,
    MIN(createdtime) AS firstcreatedtime,
    MAX(completedtime) AS lastcompletedtime
FROM request_item_status
WHERE requestid IS NOT NULL
  AND clientid IS NOT NULL
GROUP BY clientid, requestid, requestrefid
HAVING SUM(CASE WHEN status IN ('DELIVERED', 'FAILED') THEN 0 ELSE 1 END) = 0
   AND MAX(completedtime) >= :completed_since
   AND MAX(completedtime) < :settled_before
   AND MIN(createdtime) >= :created_since
ORDER BY lastcompletedtime, requestid
