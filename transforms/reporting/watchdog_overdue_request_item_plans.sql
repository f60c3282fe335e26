-- Watchdog: request item plans with no final status long after they were created, per
-- client and campaign (NHS Notify's rule). A plan is in scope when its first channel
-- (ordernumber 1) passed that channel's limit, its second channel (ordernumber 2) the
-- fallback limit, or any plan the longest limit; the count is the scoped plans not yet
-- DELIVERED, FAILED or SKIPPED. Limits are whole days before today's midnight (UTC);
-- plan_thresholds holds (communicationtype, overdue_before) for the first channel.
SELECT
    p.clientid,
    COALESCE(p.campaignid, 'N/A') AS campaignid,
    CAST(SUM(
        CASE WHEN p.status IN ('DELIVERED', 'FAILED', 'SKIPPED') THEN 0 ELSE 1 END
    ) AS BIGINT) AS flagged
FROM request_item_plan_status AS p
LEFT JOIN plan_thresholds AS th
    ON th.communicationtype = p.communicationtype
WHERE p.createdtime >= :lookback_start
  AND (
    (p.ordernumber = 1 AND p.createdtime < th.overdue_before)
    OR (p.ordernumber = 2 AND p.createdtime < :fallback_overdue_before)
    OR p.createdtime < :any_overdue_before
  )
GROUP BY p.clientid, COALESCE(p.campaignid, 'N/A')
