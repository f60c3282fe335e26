-- Pass 1 projection: each client's latest name, as NHS Notify takes it: the clientname
-- of the client's newest request item (by createddate) among the request-item records
-- of the window; createdtime is that newest item's creation time. The MERGE orders a
-- client's rows by createdtime (carried in the timestamp column), so a row only moves to
-- a newer request; a tie on createddate prefers the greater name, so arrival order never
-- matters.
WITH named AS (
    SELECT th.clientid, th.clientname, th.createddate
    FROM transaction_history AS th
    WHERE th.sk LIKE 'REQUEST_ITEM#%'
      AND th.clientid IS NOT NULL
      AND th.createddate IS NOT NULL
),
ranked AS (
    SELECT
        n.*,
        ROW_NUMBER() OVER (
            PARTITION BY n.clientid
            ORDER BY n.createddate DESC, n.clientname DESC NULLS LAST
        ) AS rn
    FROM named AS n
)
SELECT
    clientid,
    clientname,
    createddate AS createdtime,
    date_diff('millisecond', TIMESTAMPTZ '1970-01-01 00:00:00+00', createddate) AS "timestamp",
    '0' || sha256(COALESCE(clientname, '')) AS _rank
FROM ranked
WHERE rn = 1
