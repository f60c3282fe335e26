-- NHS Notify's pds_cleared_failures query: deliveries that followed a hard failure on
-- the same channel for the same recipient, which a PDS change (new contact details)
-- may have cleared. For each recipient (nhsnumberhash) and channel (EMAIL or SMS), the
-- request items with a plan on that channel are taken in creation order; an item
-- whose plan on the channel was DELIVERED, and whose previous item's plan on the
-- channel FAILED with a reason naming TEMPORARY or PERMANENT, is a row. A null
-- nhsnumberhash is no recipient and links nothing; ties on createdtime are broken by
-- requestitemid so that "previous" is always the same item.
WITH attempts AS (
    SELECT
        ris.nhsnumberhash,
        rip.communicationtype,
        ris.requestitemid,
        LAG(ris.requestitemid) OVER (
            PARTITION BY ris.nhsnumberhash, rip.communicationtype
            ORDER BY ris.createdtime, ris.requestitemid
        ) AS previousrequestitemid
    FROM request_item_status AS ris
    JOIN request_item_plan_status AS rip
        ON rip.requestitemid = ris.requestitemid
        AND rip.clientid = ris.clientid
    WHERE rip.communicationtype IN ('EMAIL', 'SMS')
      AND ris.nhsnumberhash IS NOT NULL
)
SELECT
    delivered.requestitemid,
    delivered.completedtime,
    delivered.communicationtype,
    delivered.recipientcontactid
FROM attempts
JOIN request_item_plan_status AS delivered
    ON delivered.requestitemid = attempts.requestitemid
    AND delivered.communicationtype = attempts.communicationtype
JOIN request_item_plan_status AS failed
    ON failed.requestitemid = attempts.previousrequestitemid
    AND failed.communicationtype = attempts.communicationtype
WHERE delivered.status = 'DELIVERED'
  AND failed.status = 'FAILED'
  AND (failed.failedreason LIKE '%TEMPORARY%' OR failed.failedreason LIKE '%PERMANENT%')
ORDER BY delivered.completedtime, delivered.requestitemid, delivered.requestitemplanid
