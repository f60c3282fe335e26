-- Pass 2 aggregation: request item plans that reached DELIVERED or FAILED, per client,
-- campaign, sending group, channel, supplier, created and completed date (Europe/London),
-- status and failure reason, over the aggregation window of the pass-1 projection.
-- Many dimensions are legitimately NULL (no failure reason on a delivery), so the
-- MERGE that consumes this matches them null-safely.
SELECT
    clientid,
    campaignid,
    sendinggroupid,
    sendinggroupidversion,
    communicationtype,
    supplier,
    channeltype,
    createddate,
    completeddate,
    status,
    failedreason,
    failedreasoncode,
    CAST(COUNT(DISTINCT requestitemid) AS BIGINT) AS requestitemcount
FROM request_item_plan_status
WHERE createddate >= :window_start_date
  AND status IN ('DELIVERED', 'FAILED')
GROUP BY
    clientid,
    campaignid,
    sendinggroupid,
    sendinggroupidversion,
    communicationtype,
    supplier,
    channeltype,
    createddate,
    completeddate,
    status,
    failedreason,
    failedreasoncode
