-- View: how many recipients got how many NHS App messages, per UTC month.
WITH per_recipient AS (
    SELECT createdmonth, nhsnumberhash, COUNT(*) AS appmessagecount
    FROM delivered_messages
    WHERE communicationtype = 'NHSAPP'
    GROUP BY createdmonth, nhsnumberhash
)
SELECT createdmonth, appmessagecount, COUNT(*) AS recipientcount
FROM per_recipient
GROUP BY createdmonth, appmessagecount
