-- View: billable messages per UTC day of completion and billing dimensions. A text
-- message is billable once handed to the supplier (a send time, and it ended DELIVERED
-- or FAILED); a letter once the supplier accepted it (DELIVERED). Clients' own plans
-- bill to themselves (the SMS nudge client excluded); each nudge plan bills to the
-- client, campaign and billing reference of the message it followed up, with that
-- original plan's sender ODS code.
WITH client_plans AS (
    SELECT
        CAST(rip.completedtime AS DATE) AS billingdate,
        rip.clientid,
        rip.campaignid,
        ris.billingref,
        rip.senderodscode,
        rip.communicationtype,
        rip.specificationid,
        rip.specificationbillingid,
        rip.messagelength,
        rip.messagelengthunits,
        rip.status,
        rip.sendtime
    FROM request_item_plan_status AS rip
    JOIN request_item_status AS ris
        ON ris.clientid = rip.clientid
        AND ris.requestitemid = rip.requestitemid
    WHERE ris.clientid NOT IN (SELECT nudge.clientid FROM sms_nudge_client AS nudge)
),
nudge_plans AS (
    SELECT
        CAST(nudge.completedtime AS DATE) AS billingdate,
        nudge.originatingclientid AS clientid,
        nudge.originatingcampaignid AS campaignid,
        nudge.originatingbillingref AS billingref,
        original.senderodscode,
        nudge.communicationtype,
        nudge.specificationid,
        nudge.specificationbillingid,
        nudge.messagelength,
        nudge.messagelengthunits,
        nudge.status,
        nudge.sendtime
    FROM request_item_plan_status_smsnudge AS nudge
    JOIN request_item_plan_status AS original
        ON original.clientid = nudge.originatingclientid
        AND original.requestitemplanid = nudge.originatingrequestitemplanid
),
billable AS (
    SELECT * FROM client_plans
    UNION ALL
    SELECT * FROM nudge_plans
)
SELECT
    billingdate,
    clientid,
    campaignid,
    billingref,
    senderodscode,
    communicationtype,
    specificationid,
    specificationbillingid,
    messagelength,
    messagelengthunits,
    COUNT(*) AS messagecount
FROM billable
WHERE billingdate IS NOT NULL
  AND (
      (communicationtype = 'SMS' AND status IN ('DELIVERED', 'FAILED') AND sendtime IS NOT NULL)
      OR (communicationtype = 'LETTER' AND status = 'DELIVERED')
  )
GROUP BY ALL
ORDER BY
    billingdate,
    clientid,
    campaignid,
    billingref,
    senderodscode,
    communicationtype,
    specificationid,
    specificationbillingid,
    messagelength,
    messagelengthunits
