-- Pass 2 aggregation: request items per client, campaign, sending group and created
-- date (Europe/London), over the aggregation window of the pass-1 projection.
SELECT
    clientid,
    campaignid,
    sendinggroupid,
    createddate,
    CAST(COUNT(*) AS BIGINT) AS requesteditemcount,
    CAST(SUM(CASE WHEN status = 'COMPLETED' THEN 1 ELSE 0 END) AS BIGINT) AS completeditemcount,
    CAST(SUM(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END) AS BIGINT) AS faileditemcount,
    CAST(SUM(CASE WHEN status NOT IN ('COMPLETED', 'FAILED') THEN 1 ELSE 0 END) AS BIGINT)
        AS outstandingitemcount
FROM request_item_status
WHERE createddate >= :window_start_date
GROUP BY clientid, campaignid, sendinggroupid, createddate
