"""The dashboard (issue 10 item 5): figures of the admin's scope as charts, a table and downloads."""
