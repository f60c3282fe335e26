-- Watchdog: requests (batches) created long ago that still have an unfinished request
-- item, per client and campaign.
WITH requests AS (
    SELECT
        clientid,
        campaignid,
        requestid,
        MIN(createdtime) AS createdtime,
        SUM(CASE WHEN status IN ('DELIVERED', 'FAILED') THEN 0 ELSE 1 END) AS unfinished
    FROM request_item_status
    WHERE requestid IS NOT NULL
    GROUP BY clientid, campaignid, requestid
)
SELECT
    clientid,
    campaignid,
    CAST(SUM(
        CASE WHEN unfinished > 0 AND createdtime < :overdue_before THEN 1 ELSE 0 END
    ) AS BIGINT) AS flagged
FROM requests
WHERE createdtime >= :lookback_start
GROUP BY clientid, campaignid
