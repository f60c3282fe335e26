-- View: request_item_status_summary_all without the rows, for the email-filter
-- clients only, of sending groups that only ever sent email (by the completed-plan
-- summaries: some EMAIL plans and no plan on another channel).
WITH email_only_groups AS (
    SELECT clientid, sendinggroupid
    FROM request_item_plan_completed_summary_all
    WHERE sendinggroupid IS NOT NULL
    GROUP BY clientid, sendinggroupid
    HAVING count_if(communicationtype = 'EMAIL') > 0
       AND count_if(communicationtype <> 'EMAIL') = 0
)
SELECT
    s.clientid,
    s.campaignid,
    s.sendinggroupid,
    s.sendinggroupidversion,
    s.requestrefid,
    s.requestid,
    s.createddate,
    s.requestedcount,
    s.deliveredcount,
    s.failedcount,
    s.completedcount,
    s.outstandingcount,
    s.nhsappdeliveredcount,
    s.emaildeliveredcount,
    s.smsdeliveredcount,
    s.letterdeliveredcount,
    s.nhsappfailedcount,
    s.emailfailedcount,
    s.smsfailedcount,
    s.letterfailedcount
FROM request_item_status_summary_all AS s
WHERE NOT (
    s.clientid IN (SELECT f.clientid FROM email_filter_client AS f)
    AND EXISTS (
        SELECT 1
        FROM email_only_groups AS g
        WHERE g.clientid = s.clientid AND g.sendinggroupid = s.sendinggroupid
    )
)
