-- View: recipients delivered five or more messages in a UTC month (NHS Notify's
-- threshold, despite the name), one row per recipient and client with the month's
-- total over all clients and this client's deliveries per channel.
WITH per_channel AS (
    SELECT
        createdmonth,
        nhsnumberhash,
        communicationtype,
        clientid,
        COUNT(*) AS messagesdelivered
    FROM delivered_messages
    GROUP BY createdmonth, nhsnumberhash, communicationtype, clientid
),
with_total AS (
    SELECT
        *,
        CAST(SUM(messagesdelivered) OVER (PARTITION BY createdmonth, nhsnumberhash) AS BIGINT)
            AS monthlytotalmessages
    FROM per_channel
)
SELECT
    createdmonth,
    monthlytotalmessages,
    nhsnumberhash,
    clientid,
    CAST(SUM(CASE WHEN communicationtype = 'NHSAPP' THEN messagesdelivered ELSE 0 END) AS BIGINT)
        AS appdelivered,
    CAST(SUM(CASE WHEN communicationtype = 'EMAIL' THEN messagesdelivered ELSE 0 END) AS BIGINT)
        AS emaildelivered,
    CAST(SUM(CASE WHEN communicationtype = 'SMS' THEN messagesdelivered ELSE 0 END) AS BIGINT)
        AS smsdelivered,
    CAST(SUM(CASE WHEN communicationtype = 'LETTER' THEN messagesdelivered ELSE 0 END) AS BIGINT)
        AS letterdelivered
FROM with_total
WHERE monthlytotalmessages >= 5
GROUP BY createdmonth, monthlytotalmessages, nhsnumberhash, clientid
