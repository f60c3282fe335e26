-- View: delivered letters per client, campaign and supplier, counted in the ISO
-- week-numbering year and ISO week (UTC) the supplier invoices them in. The invoice
-- day is the send day moved on by the supplier's turnaround: MBA 2 days for a Monday
-- to Wednesday send, 4 for Thursday to Saturday, 3 for Sunday; PRECISIONPROCO and
-- SYNERTEC move a weekend send to the Monday; any other supplier invoices on the
-- send day.
WITH invoiced AS (
    SELECT
        clientid,
        campaignid,
        supplier,
        sendtime + INTERVAL 1 DAY * (
            CASE
                WHEN supplier = 'MBA' THEN
                    CASE isodow(sendtime) WHEN 4 THEN 4 WHEN 5 THEN 4 WHEN 6 THEN 4 WHEN 7 THEN 3 ELSE 2 END
                WHEN supplier IN ('PRECISIONPROCO', 'SYNERTEC') THEN
                    CASE isodow(sendtime) WHEN 6 THEN 2 WHEN 7 THEN 1 ELSE 0 END
                ELSE 0
            END
        ) AS invoicetime
    FROM request_item_plan_status
    WHERE communicationtype = 'LETTER'
      AND sendtime IS NOT NULL
      AND status = 'DELIVERED'
)
SELECT
    clientid,
    campaignid,
    supplier,
    isoyear(invoicetime) AS invoiceyear,
    week(invoicetime) AS invoiceweek,
    COUNT(*) AS unitcount
FROM invoiced
GROUP BY clientid, campaignid, supplier, invoiceyear, invoiceweek
ORDER BY clientid, campaignid, supplier, invoiceyear, invoiceweek
