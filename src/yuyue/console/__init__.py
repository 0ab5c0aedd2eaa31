"""Staff and admin consoles (issue 10): server-rendered pages at `/admin` and the hall's big screen at
`/halls/{hall_id}/display`.

The shell (this package's api.py and service.py) holds the console login, the cookie session, CSRF
and the page layout; the areas live in subpackages with the usual file names: `hall/` (counter
screen, check-in desk, hall display), `manage/` (the admin console), `dashboard/` (figures and
charts). Every action calls the same domain services and authorisation as the HTTP API.
"""
