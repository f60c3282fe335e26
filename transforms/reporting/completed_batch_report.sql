-- Canned report: one row per request item and channel of a completed batch, for the
-- batches in request_item_status (the asset passes only the batches it reports).
-- Pseudonymous: no NHS number, only the client's own references.
SELECT
    i.clientid,
    i.requestid,
    i.requestrefid,
    i.requestitemid,
    i.requestitemrefid,
    i.campaignid,
    i.sendinggroupid,
    i.sendinggroupidversion,
    i.status AS requestitemstatus,
    i.createdtime AS requestitemcreatedtime,
    i.completedtime AS requestitemcompletedtime,
    i.failedreason AS requestitemfailedreason,
    i.failedreasoncode AS requestitemfailedreasoncode,
    p.requestitemplanid,
    p.communicationtype,
    p.channeltype,
    p.ordernumber,
    p.supplier,
    p.status AS requestitemplanstatus,
    p.completedtime AS requestitemplancompletedtime,
    p.failedreason AS requestitemplanfailedreason,
    p.failedreasoncode AS requestitemplanfailedreasoncode
FROM request_item_status AS i
LEFT JOIN request_item_plan_status AS p
    ON p.requestitemid = i.requestitemid
ORDER BY i.requestid, i.requestitemrefid, i.requestitemid, p.ordernumber, p.requestitemplanid
