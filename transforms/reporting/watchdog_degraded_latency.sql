-- Watchdog: send latency degraded today, per client and campaign. Over the sends of
-- raw_latency_3m since midnight (UTC) one calendar month before :today (the
-- day's number clamped to the shorter month, as Trino's DATE_ADD), grouped by
-- client, campaign, sending group and channel: a group is degraded when the median
-- latency of today's sends (since midnight UTC) exceeds :factor times the 95th
-- percentile of the sends of the month before today. Percentiles are observed
-- latencies (DuckDB's exact quantile_disc), where NHS Notify takes Trino's approximate
-- approx_percentile; a group without sends in either span is not degraded.
WITH latency AS (
    SELECT
        clientid,
        campaignid,
        sendinggroupid,
        communicationtype,
        endtime,
        (epoch_us(endtime) - epoch_us(starttime)) / 1000000 AS seconds
    FROM raw_latency_3m
    WHERE endtime >= CAST(:today - INTERVAL 1 MONTH AS DATE)
),
per_group AS (
    SELECT
        clientid,
        campaignid,
        quantile_disc(seconds, 0.95) FILTER (WHERE endtime < :today) AS monthp95latency,
        quantile_disc(seconds, 0.5) FILTER (WHERE endtime >= :today) AS todayp50latency
    FROM latency
    GROUP BY clientid, campaignid, sendinggroupid, communicationtype
)
SELECT
    clientid,
    COALESCE(campaignid, 'N/A') AS campaignid,
    CAST(COUNT(*) FILTER (WHERE todayp50latency > :factor * monthp95latency) AS BIGINT) AS flagged
FROM per_group
GROUP BY clientid, COALESCE(campaignid, 'N/A')
