-- View: the SMS nudge client's items (as request_item_status_smsnudge_staging) with
-- the original item's sending group, taken from the item's plans: one row per plan,
-- or one row with a NULL sending group for an item without plans.
SELECT
    item.requestitemid,
    item.clientid,
    item.campaignid,
    item.sendinggroupid,
    item.sendinggroupidversion,
    item.requestid,
    item.requestrefid,
    item.requestitemrefid,
    item.patientodscode,
    item.createdtime,
    item.completedtime,
    item.completedcommunicationtypes,
    item.failedcommunicationtypes,
    item.status,
    item.failedreason,
    item.failedreasoncode,
    item.sendinggroupname,
    item.sendinggroupcreatedtime,
    item.billingref,
    item."timestamp",
    item.nhsnumberhash,
    item.createddate,
    item.completeddate,
    item.originatingclientid,
    item.originatingcampaignid,
    item.originatingbillingref,
    item.originatingrequestitemid,
    item.originatingrequestitemplanid,
    plans.originatingsendinggroupid
FROM request_item_status_smsnudge_staging AS item
LEFT JOIN request_item_plan_status_smsnudge AS plans
    ON plans.requestitemid = item.requestitemid
