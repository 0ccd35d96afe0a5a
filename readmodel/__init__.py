"""The read model: every read the dashboard and the CLI make of the live registry, the database and
the exchange (`reads.DashboardData`), the JSON views they show (`views`), and the error a refused
read raises (`errors.ApiError`). The dashboard and the CLI both read through it, never through each
other."""
