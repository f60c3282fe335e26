-- View: the item summaries of every client in one table: the per-batch rows of
-- clients that have batch rows, the per-day rows (with NULL request columns) of
-- clients that have none.
SELECT
    clientid,
    campaignid,
    sendinggroupid,
    sendinggroupidversion,
    CAST(NULL AS VARCHAR) AS requestrefid,
    CAST(NULL AS VARCHAR) AS requestid,
    createddate,
    requestedcount,
    deliveredcount,
    failedcount,
    completedcount,
    outstandingcount,
    nhsappdeliveredcount,
    emaildeliveredcount,
    smsdeliveredcount,
    letterdeliveredcount,
    nhsappfailedcount,
    emailfailedcount,
    smsfailedcount,
    letterfailedcount
FROM request_item_status_summary
WHERE clientid NOT IN (SELECT DISTINCT batch.clientid FROM request_item_status_summary_batch AS batch)
UNION ALL
SELECT
    clientid,
    campaignid,
    sendinggroupid,
    sendinggroupidversion,
    requestrefid,
    requestid,
    createddate,
    requestedcount,
    deliveredcount,
    failedcount,
    completedcount,
    outstandingcount,
    nhsappdeliveredcount,
    emaildeliveredcount,
    smsdeliveredcount,
    letterdeliveredcount,
    nhsappfailedcount,
    emailfailedcount,
    smsfailedcount,
    letterfailedcount
FROM request_item_status_summary_batch
