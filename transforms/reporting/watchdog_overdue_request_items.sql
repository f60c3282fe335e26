-- Watchdog: request items still without a final status long after they were created,
-- per client and campaign.
SELECT
    clientid,
    campaignid,
    CAST(SUM(
        CASE
            WHEN status IN ('DELIVERED', 'FAILED') THEN 0
            WHEN createdtime < :overdue_before THEN 1
            ELSE 0
        END
    ) AS BIGINT) AS flagged
FROM request_item_status
WHERE createdtime >= :lookback_start
GROUP BY clientid, campaignid
