-- View: the plans of the SMS nudge client's items, each with what its item says about
-- the original message and the original item's sending group.
SELECT
    rip.requestitemplanid,
    rip.clientid,
    rip.campaignid,
    rip.sendinggroupid,
    rip.sendinggroupidversion,
    rip.requestid,
    rip.requestrefid,
    rip.requestitemid,
    rip.requestitemrefid,
    rip.communicationtype,
    rip.supplier,
    rip.channeltype,
    rip.ordernumber,
    rip.createdtime,
    rip.completedtime,
    rip.status,
    rip.failedreason,
    rip.failedreasoncode,
    rip.sendtime,
    rip.contactdetailsource,
    rip.recipientcontactid,
    rip.templateid,
    rip.specificationid,
    rip.specificationbillingid,
    rip.messagelength,
    rip.messagelengthunits,
    rip.senderodscode,
    rip."timestamp",
    rip.createddate,
    rip.completeddate,
    nudged.originatingclientid,
    nudged.originatingcampaignid,
    nudged.originatingbillingref,
    nudged.originatingrequestitemid,
    nudged.originatingrequestitemplanid,
    original.sendinggroupid AS originatingsendinggroupid
FROM request_item_plan_status AS rip
LEFT JOIN request_item_status_smsnudge_staging AS nudged
    ON nudged.requestitemid = rip.requestitemid
LEFT JOIN request_item_status AS original
    ON original.requestitemid = nudged.originatingrequestitemid
    AND original.clientid = nudged.originatingclientid
WHERE rip.clientid IN (SELECT nudge.clientid FROM sms_nudge_client AS nudge)
