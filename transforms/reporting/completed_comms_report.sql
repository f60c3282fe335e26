-- Canned report: request items completed (or failed) on one Europe/London date, for
-- every client; the asset writes one file per client. Pseudonymous: no NHS number,
-- only the client's own references.
SELECT
    clientid,
    requestid,
    requestrefid,
    requestitemid,
    requestitemrefid,
    campaignid,
    sendinggroupid,
    status,
    createdtime,
    completedtime,
    array_to_string(completedcommunicationtypes, '|') AS completedcommunicationtypes,
    array_to_string(failedcommunicationtypes, '|') AS failedcommunicationtypes,
    failedreason
FROM request_item_status
WHERE completeddate = :report_date
  AND status IN ('DELIVERED', 'FAILED')
ORDER BY clientid, requestid, requestitemid
