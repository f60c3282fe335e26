"""Feature-store transforms: DataFrame in, DataFrame out, keyed on the visit and horizon."""
