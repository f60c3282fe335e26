-- Watchdog: requests (batches) with an unfinished item long after the day they began,
-- per client and campaign. A request's day is that of its first item (UTC), and it is
-- flagged when it began before today minus the limit, within the lookback.
WITH requests AS (
    SELECT
        clientid,
        COALESCE(campaignid, 'N/A') AS campaignid,
        requestid,
        COUNT(*) AS totalitems,
        SUM(CASE WHEN status IN ('DELIVERED', 'FAILED') THEN 1 ELSE 0 END) AS completeditems,
        CAST(MIN(createdtime) AS DATE) AS createddate
    FROM request_item_status
    GROUP BY clientid, COALESCE(campaignid, 'N/A'), requestid
)
SELECT
    clientid,
    campaignid,
    CAST(SUM(CASE WHEN totalitems > completeditems THEN 1 ELSE 0 END) AS BIGINT) AS flagged
FROM requests
WHERE createddate < :overdue_before_date
  AND createddate >= :lookback_start_date
GROUP BY clientid, campaignid
