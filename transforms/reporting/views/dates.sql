-- View: a calendar, one row per day from 1 January 2023 to 31 December of the as-of
-- date's year.
SELECT
    CAST(day_value AS DATE) AS datevalue,
    year(day_value) AS "year",
    month(day_value) AS "month",
    day(day_value) AS "day"
FROM unnest(
    generate_series(
        DATE '2023-01-01',
        make_date(year(:as_of_date), 12, 31),
        INTERVAL 1 DAY
    )
) AS calendar(day_value)
ORDER BY datevalue
