-- Pass 1 projection: each client's latest name, from the CLIENT# records in the window.
-- A client is renamed now and then; the newest record wins (ties: content hash), and
-- a record without a name keeps the latest name the window has.
WITH candidates AS (
    SELECT th.*
    FROM transaction_history AS th
    WHERE th.sk LIKE 'CLIENT#%'
      AND th.clientid IS NOT NULL
      AND th."timestamp" >= :window_start_ms
),
ranked AS (
    SELECT
        c.*,
        ROW_NUMBER() OVER (
            PARTITION BY c.clientid
            ORDER BY c."timestamp" DESC, c._record_hash DESC
        ) AS rn,
        FIRST_VALUE(c.clientname IGNORE NULLS) OVER everything AS latest_clientname,
        FIRST_VALUE(c.createddate IGNORE NULLS) OVER everything AS latest_createddate
    FROM candidates AS c
    WINDOW everything AS (
        PARTITION BY c.clientid
        ORDER BY c."timestamp" DESC, c._record_hash DESC
        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    )
)
SELECT
    clientid,
    latest_clientname AS clientname,
    latest_createddate AS createdtime,
    "timestamp",
    '0' || _record_hash AS _rank
FROM ranked
WHERE rn = 1
