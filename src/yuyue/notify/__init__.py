"""Notifications: a transactional outbox, delivery by the workers, SMS providers, templates,
reminders and SMS verification codes (rules T7, T11, G9, G13, M6)."""
