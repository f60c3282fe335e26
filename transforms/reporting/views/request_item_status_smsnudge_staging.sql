-- View: the request items the SMS nudge client sent. A nudge names the message it
-- follows up in its own references: billingref is "<client>|<campaign>|<billingref>"
-- of the original, requestitemrefid "<requestitemid>_<requestitemplanid>". Missing or
-- empty parts become NULL.
SELECT
    ris.requestitemid,
    ris.clientid,
    ris.campaignid,
    ris.sendinggroupid,
    ris.sendinggroupidversion,
    ris.requestid,
    ris.requestrefid,
    ris.requestitemrefid,
    ris.patientodscode,
    ris.createdtime,
    ris.completedtime,
    ris.completedcommunicationtypes,
    ris.failedcommunicationtypes,
    ris.status,
    ris.failedreason,
    ris.failedreasoncode,
    ris.sendinggroupname,
    ris.sendinggroupcreatedtime,
    ris.billingref,
    ris."timestamp",
    ris.nhsnumberhash,
    ris.createddate,
    ris.completeddate,
    NULLIF(split_part(ris.billingref, '|', 1), '') AS originatingclientid,
    NULLIF(split_part(ris.billingref, '|', 2), '') AS originatingcampaignid,
    NULLIF(split_part(ris.billingref, '|', 3), '') AS originatingbillingref,
    NULLIF(split_part(ris.requestitemrefid, '_', 1), '') AS originatingrequestitemid,
    NULLIF(split_part(ris.requestitemrefid, '_', 2), '') AS originatingrequestitemplanid
FROM request_item_status AS ris
WHERE ris.clientid IN (SELECT nudge.clientid FROM sms_nudge_client AS nudge)
