-- Pass 1 projection: the latest record of each request item in the window.
-- Ties on timestamp prefer a terminal state, then the record's content hash, so the
-- result never depends on the order records arrived in. Dimensions take the latest
-- non-null value in the window, so a record that omits a field (older feeds lack
-- newer fields) neither blanks nor hides it.
WITH candidates AS (
    SELECT
        th.*,
        CASE WHEN th.status IN ('DELIVERED', 'FAILED') THEN 1 ELSE 0 END AS is_terminal
    FROM transaction_history AS th
    WHERE th.sk LIKE 'REQUEST_ITEM#%'
      AND th.requestitemid IS NOT NULL
),
ranked AS (
    SELECT
        c.*,
        ROW_NUMBER() OVER (
            PARTITION BY c.requestitemid
            ORDER BY c."timestamp" DESC, c.is_terminal DESC, c._record_hash DESC
        ) AS rn,
        FIRST_VALUE(c.clientid IGNORE NULLS) OVER everything AS latest_clientid,
        FIRST_VALUE(c.campaignid IGNORE NULLS) OVER everything AS latest_campaignid,
        FIRST_VALUE(c.sendinggroupid IGNORE NULLS) OVER everything AS latest_sendinggroupid,
        FIRST_VALUE(c.sendinggroupidversion IGNORE NULLS) OVER everything
            AS latest_sendinggroupidversion,
        FIRST_VALUE(c.requestid IGNORE NULLS) OVER everything AS latest_requestid,
        FIRST_VALUE(c.requestrefid IGNORE NULLS) OVER everything AS latest_requestrefid,
        FIRST_VALUE(c.requestitemrefid IGNORE NULLS) OVER everything AS latest_requestitemrefid,
        FIRST_VALUE(c.nhsnumber IGNORE NULLS) OVER everything AS latest_nhsnumber,
        FIRST_VALUE(c.patientodscode IGNORE NULLS) OVER everything AS latest_patientodscode,
        FIRST_VALUE(c.createddate IGNORE NULLS) OVER everything AS latest_createddate,
        FIRST_VALUE(c.sendinggroupname IGNORE NULLS) OVER everything AS latest_sendinggroupname,
        FIRST_VALUE(c.sendinggroupcreateddate IGNORE NULLS) OVER everything
            AS latest_sendinggroupcreateddate,
        FIRST_VALUE(c.billingref IGNORE NULLS) OVER everything AS latest_billingref
    FROM candidates AS c
    WINDOW everything AS (
        PARTITION BY c.requestitemid
        ORDER BY c."timestamp" DESC, c.is_terminal DESC, c._record_hash DESC
        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    )
)
SELECT
    requestitemid,
    latest_clientid AS clientid,
    latest_campaignid AS campaignid,
    latest_sendinggroupid AS sendinggroupid,
    latest_sendinggroupidversion AS sendinggroupidversion,
    latest_requestid AS requestid,
    latest_requestrefid AS requestrefid,
    latest_requestitemrefid AS requestitemrefid,
    latest_nhsnumber AS nhsnumber,
    latest_patientodscode AS patientodscode,
    latest_createddate AS createdtime,
    completeddate AS completedtime,
    completedcommunicationtypes,
    failedcommunicationtypes,
    status,
    failedreason,
    failedreasoncode,
    latest_sendinggroupname AS sendinggroupname,
    latest_sendinggroupcreateddate AS sendinggroupcreatedtime,
    latest_billingref AS billingref,
    "timestamp",
    CAST(is_terminal AS VARCHAR) || _record_hash AS _rank
FROM ranked
WHERE rn = 1
