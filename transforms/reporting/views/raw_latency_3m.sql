-- View: send latencies of the last three months, one row per send. A first channel's
-- latency runs from the earliest creation of any item of its request to the plan's
-- send time; a fallback channel's from the latest completion of the (up to three)
-- channels before it in the item's order to its own send time. Only latencies that
-- start Monday to Friday (by the UTC weekday) between 08:00 and 17:59 Europe/London
-- time, two minutes either side included, are kept. "The last three months" is from
-- UTC midnight three calendar months before the as-of date.
WITH since AS (
    SELECT CAST(:as_of_date - INTERVAL 3 MONTH AS DATE) AS day
),
request_start AS (
    SELECT ris.clientid, ris.requestid, MIN(ris.createdtime) AS createdtime
    FROM request_item_status AS ris, since
    WHERE ris.createdtime >= since.day
    GROUP BY ris.clientid, ris.requestid
),
first_sends AS (
    SELECT
        rip.clientid,
        rip.campaignid,
        rip.sendinggroupid,
        rip.communicationtype,
        rs.createdtime AS starttime,
        rip.sendtime AS endtime
    FROM request_start AS rs
    JOIN request_item_plan_status AS rip
        ON rip.clientid = rs.clientid
        AND rip.requestid = rs.requestid
    CROSS JOIN since
    WHERE rip.ordernumber = 1
      AND rip.channeltype = 'primary'
      AND rip.createdtime >= since.day
),
cascade AS (
    SELECT
        rip.clientid,
        rip.campaignid,
        rip.sendinggroupid,
        rip.communicationtype,
        rip.ordernumber,
        rip.sendtime,
        lag(rip.completedtime, 1) OVER item_order AS previous1,
        lag(rip.completedtime, 2) OVER item_order AS previous2,
        lag(rip.completedtime, 3) OVER item_order AS previous3
    FROM request_item_plan_status AS rip, since
    WHERE rip.channeltype = 'primary'
      AND rip.createdtime >= since.day
    WINDOW item_order AS (PARTITION BY rip.requestitemid ORDER BY rip.ordernumber)
),
fallback_sends AS (
    SELECT
        clientid,
        campaignid,
        sendinggroupid,
        communicationtype,
        greatest(
            coalesce(previous1, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
            coalesce(previous2, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
            coalesce(previous3, TIMESTAMPTZ '2000-01-01 00:00:00+00')
        ) AS starttime,
        sendtime AS endtime
    FROM cascade
    WHERE ordernumber > 1
),
sends AS (
    SELECT * FROM first_sends
    UNION ALL
    SELECT * FROM fallback_sends
)
SELECT clientid, campaignid, sendinggroupid, communicationtype, starttime, endtime
FROM sends
WHERE starttime IS NOT NULL
  AND endtime IS NOT NULL
  AND starttime > TIMESTAMPTZ '2000-01-01 00:00:00+00'
  AND isodow(starttime) <= 5
  AND hour(timezone('Europe/London', starttime + INTERVAL 2 MINUTE)) BETWEEN 8 AND 17
  AND hour(timezone('Europe/London', starttime - INTERVAL 2 MINUTE)) BETWEEN 8 AND 17
