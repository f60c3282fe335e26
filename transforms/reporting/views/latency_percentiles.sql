-- View: percentiles of send latency (seconds) per client, campaign and channel, over
-- the raw latencies whose send falls on or after UTC midnight two calendar months
-- before the as-of date. Each percentile is an observed latency (DuckDB's exact
-- quantile_disc), where NHS Notify takes Trino's approximate approx_percentile.
WITH recent AS (
    SELECT
        clientid,
        campaignid,
        communicationtype,
        (epoch_us(endtime) - epoch_us(starttime)) / 1000000 AS seconds
    FROM raw_latency_3m
    WHERE endtime >= CAST(:as_of_date - INTERVAL 2 MONTH AS DATE)
),
per_group AS (
    SELECT
        clientid,
        campaignid,
        communicationtype,
        quantile_disc(
            seconds,
            [0.001, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6,
             0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 0.999]
        ) AS latencies
    FROM recent
    GROUP BY clientid, campaignid, communicationtype
)
SELECT
    clientid,
    campaignid,
    communicationtype,
    unnest(
        CAST([0.1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90,
              95, 96, 97, 98, 99, 99.9] AS DOUBLE[])
    ) AS percentile,
    unnest(latencies) AS latency
FROM per_group
ORDER BY clientid, campaignid, communicationtype, percentile
