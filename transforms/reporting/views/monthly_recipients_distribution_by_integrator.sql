-- View: per UTC month and client, how many distinct recipients got how many messages
-- from that client (a missing pseudonym is not counted as a recipient).
WITH per_recipient AS (
    SELECT createdmonth, clientid, nhsnumberhash, COUNT(*) AS messagedeliveredcount
    FROM delivered_messages
    GROUP BY createdmonth, clientid, nhsnumberhash
)
SELECT
    createdmonth,
    clientid,
    messagedeliveredcount,
    COUNT(DISTINCT nhsnumberhash) AS recipientcount
FROM per_recipient
GROUP BY createdmonth, clientid, messagedeliveredcount
