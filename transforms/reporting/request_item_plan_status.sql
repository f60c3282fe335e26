-- Pass 1 projection: the latest record of each request item plan (one channel of one
-- request item) in the window. Same rules as request_item_status: newest timestamp
-- wins, ties prefer a final state (DELIVERED, FAILED, SKIPPED) and then the record's
-- content hash; dimensions take their latest non-null value. No NHS number: a plan
-- row needs none. A record without templateid may name its template per supplier in
-- templates.suppliers (kept in _extra until the schema learns it), as older senders do.
WITH candidates AS (
    SELECT
        th.*,
        COALESCE(
            th.templateid,
            json_extract_string(th._extra, '$.templates.suppliers.' || lower(th.supplier))
        ) AS resolved_templateid,
        CASE WHEN th.status IN ('DELIVERED', 'FAILED', 'SKIPPED') THEN 1 ELSE 0 END
            AS is_terminal
    FROM transaction_history AS th
    WHERE th.sk LIKE 'REQUEST_ITEM_PLAN#%'
      AND th.requestitemplanid IS NOT NULL
),
ranked AS (
    SELECT
        c.*,
        ROW_NUMBER() OVER (
            PARTITION BY c.requestitemplanid
            ORDER BY c."timestamp" DESC, c.is_terminal DESC, c._record_hash DESC
        ) AS rn,
        FIRST_VALUE(c.clientid IGNORE NULLS) OVER everything AS latest_clientid,
        FIRST_VALUE(c.campaignid IGNORE NULLS) OVER everything AS latest_campaignid,
        FIRST_VALUE(c.sendinggroupid IGNORE NULLS) OVER everything AS latest_sendinggroupid,
        FIRST_VALUE(c.sendinggroupidversion IGNORE NULLS) OVER everything
            AS latest_sendinggroupidversion,
        FIRST_VALUE(c.requestid IGNORE NULLS) OVER everything AS latest_requestid,
        FIRST_VALUE(c.requestrefid IGNORE NULLS) OVER everything AS latest_requestrefid,
        FIRST_VALUE(c.requestitemid IGNORE NULLS) OVER everything AS latest_requestitemid,
        FIRST_VALUE(c.requestitemrefid IGNORE NULLS) OVER everything AS latest_requestitemrefid,
        FIRST_VALUE(c.communicationtype IGNORE NULLS) OVER everything
            AS latest_communicationtype,
        FIRST_VALUE(c.supplier IGNORE NULLS) OVER everything AS latest_supplier,
        FIRST_VALUE(c.channeltype IGNORE NULLS) OVER everything AS latest_channeltype,
        FIRST_VALUE(c.ordernumber IGNORE NULLS) OVER everything AS latest_ordernumber,
        FIRST_VALUE(c.createddate IGNORE NULLS) OVER everything AS latest_createddate,
        FIRST_VALUE(c.datesent IGNORE NULLS) OVER everything AS latest_datesent,
        FIRST_VALUE(c.contactdetailsource IGNORE NULLS) OVER everything
            AS latest_contactdetailsource,
        FIRST_VALUE(c.recipientcontactid IGNORE NULLS) OVER everything
            AS latest_recipientcontactid,
        FIRST_VALUE(c.resolved_templateid IGNORE NULLS) OVER everything AS latest_templateid,
        FIRST_VALUE(c.specificationid IGNORE NULLS) OVER everything AS latest_specificationid,
        FIRST_VALUE(c.specificationbillingid IGNORE NULLS) OVER everything
            AS latest_specificationbillingid,
        FIRST_VALUE(c.messagelength IGNORE NULLS) OVER everything AS latest_messagelength,
        FIRST_VALUE(c.messagelengthunits IGNORE NULLS) OVER everything
            AS latest_messagelengthunits,
        FIRST_VALUE(c.senderodscode IGNORE NULLS) OVER everything AS latest_senderodscode
    FROM candidates AS c
    WINDOW everything AS (
        PARTITION BY c.requestitemplanid
        ORDER BY c."timestamp" DESC, c.is_terminal DESC, c._record_hash DESC
        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    )
)
SELECT
    requestitemplanid,
    latest_clientid AS clientid,
    latest_campaignid AS campaignid,
    latest_sendinggroupid AS sendinggroupid,
    latest_sendinggroupidversion AS sendinggroupidversion,
    latest_requestid AS requestid,
    latest_requestrefid AS requestrefid,
    latest_requestitemid AS requestitemid,
    latest_requestitemrefid AS requestitemrefid,
    latest_communicationtype AS communicationtype,
    latest_supplier AS supplier,
    latest_channeltype AS channeltype,
    latest_ordernumber AS ordernumber,
    latest_createddate AS createdtime,
    completeddate AS completedtime,
    status,
    failedreason,
    failedreasoncode,
    latest_datesent AS sendtime,
    latest_contactdetailsource AS contactdetailsource,
    latest_recipientcontactid AS recipientcontactid,
    latest_templateid AS templateid,
    latest_specificationid AS specificationid,
    latest_specificationbillingid AS specificationbillingid,
    latest_messagelength AS messagelength,
    latest_messagelengthunits AS messagelengthunits,
    latest_senderodscode AS senderodscode,
    "timestamp",
    CAST(is_terminal AS VARCHAR) || _record_hash AS _rank
FROM ranked
WHERE rn = 1
