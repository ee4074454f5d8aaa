"""`dbmaint run` and `dbmaint status`: schedules, the scheduler, metrics, Sentry, systemd."""
