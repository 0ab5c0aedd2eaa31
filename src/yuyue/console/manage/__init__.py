"""The admin console (issue 10 item 4): units, halls, services, policy, capacity, waiting lists,
alerts, bans, admins and the audit log, for each admin's subtree."""
