"""Bureaus' own booking systems (rules G5, G6; decision 0080): push their slots and bookings, pull
the platform's, over the signed partner API."""
