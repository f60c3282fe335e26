-- View: every request item plan that reached a final state (FAILED, DELIVERED or
-- SKIPPED), beside its request item, plus the FAILED items that never got a plan.
-- Only items and plans created on or after the UTC midnight 90 days before the
-- as-of date are read (a missing creation time does not exclude). Times are text:
-- ISO 8601 in UTC, to the millisecond, with a trailing Z.
SELECT
    ris.clientid,
    ris.requestid,
    ris.requestrefid,
    ris.requestitemid,
    ris.requestitemrefid,
    strftime(ris.completedtime, '%Y-%m-%dT%H:%M:%S.%gZ') AS requestitemcompletedtime,
    ris.failedreason AS requestitemfailedreason,
    ris.sendinggroupid,
    ris.sendinggroupidversion,
    ris.sendinggroupname,
    strftime(ris.sendinggroupcreatedtime, '%Y-%m-%dT%H:%M:%S.%gZ') AS sendinggroupcreatedtime,
    ris.status AS requestitemstatus,
    rip.requestitemplanid,
    strftime(rip.completedtime, '%Y-%m-%dT%H:%M:%S.%gZ') AS requestitemplancompletedtime,
    rip.status AS requestitemplanstatus,
    rip.communicationtype,
    rip.channeltype,
    rip.failedreason AS requestitemplanfailedreason,
    rip.templateid,
    rip.failedreasoncode AS requestitemplanfailedreasoncode,
    ris.failedreasoncode AS requestitemfailedreasoncode
FROM request_item_status AS ris
LEFT JOIN request_item_plan_status AS rip
    ON rip.requestitemid = ris.requestitemid
    AND rip.clientid = ris.clientid
WHERE (
        rip.status IN ('FAILED', 'DELIVERED', 'SKIPPED')
        OR (ris.status = 'FAILED' AND rip.requestitemplanid IS NULL)
    )
  AND (ris.createdtime IS NULL OR ris.createdtime >= :as_of_date - INTERVAL 90 DAY)
  AND (rip.createdtime IS NULL OR rip.createdtime >= :as_of_date - INTERVAL 90 DAY)
ORDER BY ris.clientid, ris.requestid, ris.requestitemid, rip.requestitemplanid
