-- Watchdog: request items stuck before sending, per client and campaign: waiting for
-- enrichment (a PDS lookup) or enriched but never sent, since before today minus the
-- state's limit (whole days, UTC).
SELECT
    clientid,
    COALESCE(campaignid, 'N/A') AS campaignid,
    CAST(SUM(
        CASE
            WHEN status = 'ENRICHED' AND createdtime < :enriched_stuck_before THEN 1
            WHEN status = 'PENDING_ENRICHMENT' AND createdtime < :pending_stuck_before THEN 1
            ELSE 0
        END
    ) AS BIGINT) AS flagged
FROM request_item_status
WHERE createdtime >= :lookback_start
GROUP BY clientid, COALESCE(campaignid, 'N/A')
