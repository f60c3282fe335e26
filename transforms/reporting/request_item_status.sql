-- Pass 1 projection: the latest record of each request item in the window.
-- Ties on timestamp prefer a terminal state, then the record's content hash, so the
-- result never depends on the order records arrived in.
WITH ranked AS (
    SELECT
        th.*,
        CASE WHEN th.status IN ('COMPLETED', 'FAILED') THEN 1 ELSE 0 END AS is_terminal,
        ROW_NUMBER() OVER (
            PARTITION BY th.requestitemid
            ORDER BY
                th."timestamp" DESC,
                CASE WHEN th.status IN ('COMPLETED', 'FAILED') THEN 1 ELSE 0 END DESC,
                th._record_hash DESC
        ) AS rn
    FROM transaction_history AS th
    WHERE th.sk LIKE 'REQUEST_ITEM#%'
      AND th.requestitemid IS NOT NULL
      AND th."timestamp" >= :window_start_ms
)
SELECT
    requestitemid,
    clientid,
    campaignid,
    sendinggroupid,
    sendinggroupidversion,
    requestid,
    requestrefid,
    requestitemrefid,
    nhsnumber,
    patientodscode,
    createddate AS createdtime,
    completeddate AS completedtime,
    completedcommunicationtypes,
    failedcommunicationtypes,
    status,
    failedreason,
    failedreasoncode,
    "timestamp",
    CAST(is_terminal AS VARCHAR) || _record_hash AS _rank
FROM ranked
WHERE rn = 1
