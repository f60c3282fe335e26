-- View: one row per channel a delivered request item was delivered on. The day and
-- month are of createdtime in UTC (not the Europe/London createddate of the staging
-- table).
SELECT
    CAST(ris.createdtime AS DATE) AS createddate,
    CAST(date_trunc('month', ris.createdtime) AS DATE) AS createdmonth,
    ris.nhsnumberhash,
    ris.clientid,
    channel.communicationtype,
    ris.requestitemid
FROM request_item_status AS ris
CROSS JOIN unnest(ris.completedcommunicationtypes) AS channel(communicationtype)
WHERE ris.status = 'DELIVERED'
