-- View: how many recipients got how many messages, per UTC day and channel (all
-- clients together; a missing pseudonym counts as one recipient).
WITH per_recipient AS (
    SELECT createddate, nhsnumberhash, communicationtype, COUNT(*) AS messagecount
    FROM delivered_messages
    GROUP BY createddate, nhsnumberhash, communicationtype
)
SELECT createddate, communicationtype, messagecount, COUNT(*) AS recipientcount
FROM per_recipient
GROUP BY createddate, communicationtype, messagecount
