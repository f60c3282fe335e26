-- Watchdog: request item plans with no final status long after they were created, per
-- client and campaign. The first channel tried has a per-channel limit (a letter is
-- posted, an app message is not), fallback channels a longer one, and any plan at all
-- a longest one. plan_thresholds holds (communicationtype, overdue_before).
SELECT
    p.clientid,
    p.campaignid,
    CAST(SUM(
        CASE
            WHEN p.status IN ('DELIVERED', 'FAILED', 'SKIPPED') THEN 0
            WHEN p.createdtime < :any_overdue_before THEN 1
            WHEN p.ordernumber = 1 AND p.createdtime < th.overdue_before THEN 1
            WHEN p.ordernumber > 1 AND p.createdtime < :fallback_overdue_before THEN 1
            ELSE 0
        END
    ) AS BIGINT) AS flagged
FROM request_item_plan_status AS p
LEFT JOIN plan_thresholds AS th
    ON th.communicationtype = p.communicationtype
WHERE p.createdtime >= :lookback_start
GROUP BY p.clientid, p.campaignid
