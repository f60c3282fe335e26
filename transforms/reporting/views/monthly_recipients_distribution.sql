-- View: how many recipients got how many messages (every channel and client), per UTC
-- month.
WITH per_recipient AS (
    SELECT createdmonth, nhsnumberhash, COUNT(*) AS monthlytotalmessages
    FROM delivered_messages
    GROUP BY createdmonth, nhsnumberhash
)
SELECT createdmonth, monthlytotalmessages, COUNT(*) AS recipientcount
FROM per_recipient
GROUP BY createdmonth, monthlytotalmessages
