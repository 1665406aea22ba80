"""What every layer stands on and that needs no database: settings, the exception tree and
the queue names.  Nothing here imports another package of ours."""
