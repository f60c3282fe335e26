-- View: recipients who got NHS App messages from more than one client in a UTC month,
-- counted by how many clients they heard from.
WITH per_recipient AS (
    SELECT createdmonth, nhsnumberhash, COUNT(DISTINCT clientid) AS clientcount
    FROM delivered_messages
    WHERE communicationtype = 'NHSAPP'
    GROUP BY createdmonth, nhsnumberhash
)
SELECT createdmonth, clientcount, COUNT(*) AS recipientcount
FROM per_recipient
WHERE clientcount > 1
GROUP BY createdmonth, clientcount
