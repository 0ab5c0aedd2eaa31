"""The waiting list (预约排队, rules G11, G12)."""
