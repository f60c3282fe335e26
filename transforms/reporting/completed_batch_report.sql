-- Canned report: NHS Notify's completed batch report, every row of the completed_comms
-- view for the batches (requests) the asset passes; the asset writes one file per
-- batch and drops clientid. Pseudonymous: no NHS number.
SELECT
    clientid,
    requestid,
    requestrefid,
    requestitemid,
    requestitemrefid,
    requestitemcompletedtime,
    requestitemfailedreason,
    sendinggroupid,
    sendinggroupidversion,
    sendinggroupname,
    sendinggroupcreatedtime,
    requestitemstatus,
    requestitemplanid,
    requestitemplancompletedtime,
    requestitemplanstatus,
    communicationtype,
    channeltype,
    requestitemplanfailedreason,
    templateid,
    requestitemplanfailedreasoncode,
    requestitemfailedreasoncode
FROM completed_comms
ORDER BY clientid, requestid, requestitemid, requestitemplanid
