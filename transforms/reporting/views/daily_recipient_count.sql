-- View: distinct recipients (pseudonyms) delivered to, per UTC day, client and channel.
SELECT
    createddate,
    clientid,
    communicationtype,
    COUNT(DISTINCT nhsnumberhash) AS recipientcount
FROM delivered_messages
GROUP BY createddate, clientid, communicationtype
