-- View: the completed-plan summaries of every client in one table: the per-batch rows
-- of clients that have batch rows, the per-day rows (with NULL request columns) of
-- clients that have none.
SELECT
    clientid,
    campaignid,
    sendinggroupid,
    sendinggroupidversion,
    CAST(NULL AS VARCHAR) AS requestrefid,
    CAST(NULL AS VARCHAR) AS requestid,
    communicationtype,
    supplier,
    createddate,
    completeddate,
    status,
    failedreason,
    contactdetailsource,
    channeltype,
    requestitemcount
FROM request_item_plan_completed_summary
WHERE clientid NOT IN (
    SELECT DISTINCT batch.clientid FROM request_item_plan_completed_summary_batch AS batch
)
UNION ALL
SELECT
    clientid,
    campaignid,
    sendinggroupid,
    sendinggroupidversion,
    requestrefid,
    requestid,
    communicationtype,
    supplier,
    createddate,
    completeddate,
    status,
    failedreason,
    contactdetailsource,
    channeltype,
    requestitemcount
FROM request_item_plan_completed_summary_batch
