-- View: per UTC month and channel, messages delivered and the month's distinct
-- recipients (over every channel), and their ratio rounded half up to one decimal
-- place (the precision of NHS Notify's decimal arithmetic); NULL for a month without
-- a known recipient.
WITH per_channel AS (
    SELECT createdmonth, communicationtype, COUNT(*) AS messagedeliveredcount
    FROM delivered_messages
    GROUP BY createdmonth, communicationtype
),
per_month AS (
    SELECT createdmonth, COUNT(DISTINCT nhsnumberhash) AS totalmonthlyrecipients
    FROM delivered_messages
    GROUP BY createdmonth
)
SELECT
    c.createdmonth,
    c.communicationtype,
    m.totalmonthlyrecipients,
    c.messagedeliveredcount,
    CAST(
        (20 * c.messagedeliveredcount + m.totalmonthlyrecipients)
        // NULLIF(2 * m.totalmonthlyrecipients, 0) AS DOUBLE
    ) / 10 AS averagemessagesperecipient
FROM per_channel AS c
JOIN per_month AS m ON m.createdmonth = c.createdmonth
