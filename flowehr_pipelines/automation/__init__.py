"""Automation: jobs, schedules, sensors, freshness policies and alerts of the code location."""
