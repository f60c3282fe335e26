-- View: each SMS nudge plan beside the NHS App message it followed up. hrstoread is
-- the hours from the nudge's creation to the app message's completion, when both were
-- delivered: whole seconds elapsed, in hours rounded half up to one decimal place (the
-- precision NHS Notify's decimal arithmetic gives).
WITH paired AS (
    SELECT
        nudge.createdtime,
        nudge.clientid,
        nudge.requestitemplanid,
        nudge.originatingclientid,
        nudge.originatingcampaignid,
        nudge.originatingbillingref,
        nudge.originatingsendinggroupid,
        nudge.originatingrequestitemplanid,
        app.status AS appstatus,
        CASE
            WHEN nudge.status = 'DELIVERED' AND app.status = 'DELIVERED'
                THEN CAST(trunc((epoch_us(app.completedtime) - epoch_us(nudge.createdtime)) / 1000000) AS BIGINT)
        END AS seconds
    FROM request_item_plan_status_smsnudge AS nudge
    LEFT JOIN request_item_plan_status AS app
        ON app.requestitemplanid = nudge.originatingrequestitemplanid
        AND app.clientid = nudge.originatingclientid
        AND app.communicationtype = 'NHSAPP'
)
SELECT
    CAST(createdtime AS DATE) AS createddate,
    clientid,
    requestitemplanid,
    originatingclientid,
    originatingcampaignid,
    originatingbillingref,
    originatingsendinggroupid,
    originatingrequestitemplanid,
    appstatus AS originalstatus,
    CAST(sign(seconds) * ((2 * abs(seconds) + 360) // 720) AS DOUBLE) / 10 AS hrstoread
FROM paired
