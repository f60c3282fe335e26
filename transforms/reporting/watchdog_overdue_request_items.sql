-- Watchdog: request items still outstanding long after the day they were created, per
-- client and campaign, read from the item summary's outstandingcount as NHS Notify does:
-- created before today minus the limit and within the lookback (whole days, UTC).
SELECT
    clientid,
    COALESCE(campaignid, 'N/A') AS campaignid,
    CAST(SUM(outstandingcount) AS BIGINT) AS flagged
FROM request_item_status_summary
WHERE createddate < :overdue_before_date
  AND createddate >= :lookback_start_date
GROUP BY clientid, COALESCE(campaignid, 'N/A')
